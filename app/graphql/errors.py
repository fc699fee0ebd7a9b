"""Hide unexpected errors from clients: a code and a request id go out, the details to the log.

A database outage is not a bug: it is reported as such (UNAVAILABLE, try again), still
without a word of what the driver said.
"""

from __future__ import annotations

from graphql import GraphQLError
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import MaskErrors
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError

from app.adapters.postgres import DatabaseUnavailable
from app.config.logs import current_request_id


class ClientError(ValueError):
    """An error whose message is meant for the client (bad token, bad cursor, ...)."""

    code = "VALIDATION"


# Strawberry's words on an operation it cannot run (none named, or of a type not allowed).
_DOCUMENT_ERRORS = (MissingQueryError, CannotGetOperationTypeError, InvalidOperationTypeError)


def _unexpected(error: GraphQLError) -> bool:
    # Decided by what raised it, on every transport. graphql-core's own errors (no original,
    # or wrapping its own, as for a variable a scalar refused) are about the document when
    # they have no path; with one they are about the result, a fault here. Anything else is
    # shown only when raised as ClientError: an exception from a resolver or a subscription's
    # generator (which has no path) may carry a driver's message, a URL, a password.
    original = error.original_error
    if original is None or isinstance(original, GraphQLError):
        return error.path is not None
    return not isinstance(original, (ClientError, *_DOCUMENT_ERRORS))


class MaskUnexpectedErrors(MaskErrors):
    """Replace the message of every unexpected error with a code and the request id: over
    HTTP once the operation ends, over WebSocket on each result before it is sent (strawberry
    calls `on_stream_result` for both subprotocols)."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_unexpected)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        request_id = current_request_id.get()
        code, message = masked(error.original_error, request_id)
        return GraphQLError(
            message=message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": code, "requestId": request_id},
        )


def masked(error: BaseException | None, request_id: str) -> tuple[str, str]:
    """The code and message an unexpected error is shown with (the compiled mutation path,
    app/mutations/compiled.py, shows its errors so too)."""
    if isinstance(error, DatabaseUnavailable):
        return (
            "UNAVAILABLE",
            f"The store is unavailable; try again shortly (request id {request_id}).",
        )
    return "INTERNAL", f"Internal error; quote request id {request_id} when reporting it."
