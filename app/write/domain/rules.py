"""Input rules shared by the aggregates: shapes, lengths and ranges."""

from __future__ import annotations

import re

from app.events.text import storable
from app.write.domain.errors import ErrorCode, Path, UserError

MAX_NAME_LENGTH = 200
MAX_EMAIL_LENGTH = 254
MAX_PRICE_CENTS = 10**12
MAX_INITIAL_STOCK = 10**9
MAX_RESTOCK = 10**6
MAX_STOCK = 2**31 - 1  # the contract's Product.stock is an Int
MAX_ORDER_LINES = 100
MAX_LINE_QUANTITY = 10_000
MAX_REASON_LENGTH = 500

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s.\x00-\x1f\x7f]+(\.[^@\s.\x00-\x1f\x7f]+)+")
_SKU = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _error(message: str, field: Path) -> UserError:
    return UserError(ErrorCode.VALIDATION, message, field)


def email(value: str, errors: list[UserError], field: Path = ("email",)) -> str:
    """Trimmed and lower-cased; must look like name@domain.tld."""
    cleaned = value.strip().lower()
    if len(cleaned) > MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(cleaned) or not storable(cleaned):
        errors.append(_error("email must look like name@example.com", field))
    return cleaned


def name(value: str, errors: list[UserError], field: Path = ("name",)) -> str:
    """Trimmed; not blank; at most 200 characters."""
    cleaned = value.strip()
    if not cleaned:
        errors.append(_error("name must not be blank", field))
    elif _CONTROL.search(cleaned):
        errors.append(_error("name must not contain control characters", field))
    elif not storable(cleaned):
        errors.append(_error("name must be Unicode text (it holds a lone surrogate)", field))
    elif len(cleaned) > MAX_NAME_LENGTH:
        errors.append(_error(f"name must be at most {MAX_NAME_LENGTH} characters", field))
    return cleaned


def sku(value: str, errors: list[UserError], field: Path = ("sku",)) -> str:
    """1 to 64 letters, digits, '-' or '_'."""
    if not _SKU.fullmatch(value):
        errors.append(_error("sku must be 1 to 64 letters, digits, '-' or '_'", field))
    return value


def in_range(
    value: int, low: int, high: int, what: str, errors: list[UserError], field: Path
) -> int:
    """An integer within [low, high]."""
    if not low <= value <= high:
        errors.append(_error(f"{what} must be between {low} and {high}", field))
    return value


def reason(value: str | None, errors: list[UserError], field: Path = ("reason",)) -> str | None:
    """Optional free text, trimmed, at most 500 characters; blank means none."""
    if value is None or not value.strip():
        return None
    cleaned = value.strip()
    if not storable(cleaned):
        errors.append(_error("reason must not contain NUL characters or lone surrogates", field))
    elif len(cleaned) > MAX_REASON_LENGTH:
        errors.append(_error(f"reason must be at most {MAX_REASON_LENGTH} characters", field))
    return cleaned
