"""Errors in a query's arguments: shown to the client with the code VALIDATION."""

from __future__ import annotations

from typing import ClassVar

from app.graphql.errors import ClientError


class InvalidArgument(ClientError):
    """A query argument breaks a rule (page size, cursor, date range, token, ...)."""

    # graphql-core copies an original error's `extensions` into the GraphQL error it reports.
    extensions: ClassVar[dict[str, object]] = {"code": "VALIDATION"}
