"""Why a command was refused: a code from the contract, a message, the path into the input."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class ErrorCode(StrEnum):
    """The contract's ErrorCode values."""

    VALIDATION = "VALIDATION"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    INSUFFICIENT_STOCK = "INSUFFICIENT_STOCK"
    INVALID_STATE = "INVALID_STATE"
    VERSION_CONFLICT = "VERSION_CONFLICT"
    COMMAND_ID_REUSED = "COMMAND_ID_REUSED"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"


Path = tuple[str, ...]


@dataclass(frozen=True)
class UserError:
    """One broken rule."""

    code: ErrorCode
    message: str
    field: Path | None = None


class Rejected(Exception):
    """The command breaks one or more rules; nothing is written."""

    def __init__(self, errors: Iterable[UserError]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(error.message for error in self.errors))


def reject(code: ErrorCode, message: str, *field: str) -> Rejected:
    """A rejection with a single error."""
    return Rejected([UserError(code, message, field or None)])


def raise_if_any(errors: list[UserError]) -> None:
    """Reject with every error collected so far, if there is any."""
    if errors:
        raise Rejected(errors)
