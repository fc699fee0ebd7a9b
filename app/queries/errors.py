"""Errors in what a query asks: shown to the client with a code (VALIDATION, RATE_LIMITED)."""

from __future__ import annotations

from typing import ClassVar

from app.graphql.errors import ClientError


class InvalidArgument(ClientError):
    """A query argument breaks a rule (page size, cursor, date range, token, ...)."""

    # graphql-core copies an original error's `extensions` into the GraphQL error it reports.
    extensions: ClassVar[dict[str, object]] = {"code": "VALIDATION"}


class TooManyWaits(ClientError):
    """A wait for projections past the cap per request (or WebSocket) or per process: refused
    at once, not queued."""

    extensions: ClassVar[dict[str, object]] = {"code": "RATE_LIMITED"}
