"""Hide unexpected errors from clients: a code and a request id go out, the details to the log.

A database outage is not a bug: it is reported as such (UNAVAILABLE, try again), still
without a word of what the driver said.
"""

from __future__ import annotations

from graphql import GraphQLError
from strawberry.extensions import MaskErrors

from app.adapters.postgres import DatabaseUnavailable
from app.config.logs import current_request_id


class ClientError(ValueError):
    """An error whose message is meant for the client (bad token, bad cursor, ...)."""

    code = "VALIDATION"


def _unexpected(error: GraphQLError) -> bool:
    # Errors without a path come from parsing, validation and coercing variables: they are
    # about the client's document and safe to show. Errors with a path were raised while
    # resolving a field: shown only when raised as ClientError.
    original = error.original_error
    return error.path is not None and not isinstance(original, ClientError)


class MaskUnexpectedErrors(MaskErrors):
    """Replace the message of every unexpected error with a code and the request id."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_unexpected)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        request_id = current_request_id.get()
        if isinstance(error.original_error, DatabaseUnavailable):
            code = "UNAVAILABLE"
            message = f"The store is unavailable; try again shortly (request id {request_id})."
        else:
            code = "INTERNAL"
            message = f"Internal error; quote request id {request_id} when reporting it."
        return GraphQLError(
            message=message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": code, "requestId": request_id},
        )
