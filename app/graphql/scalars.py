"""GraphQL scalars of the contract beyond strawberry's own (DateTime and Date are built in).

`Long` is a plain int to Python and type checkers; `SCALARS` tells the schema how to send and
read it. It also wraps strawberry's Date and DateTime parsing: DateTime is narrowed to the
moments the stores can hold, and a refused value is not quoted raw in the error (graphql-core
adds it with repr()), since a lone surrogate quoted raw cannot be written out as UTF-8.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import NewType, TypeVar

import strawberry
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.schema.types.base_scalars import DateDefinition, DateTimeDefinition
from strawberry.types.scalar import ScalarDefinition

from app.graphql.errors import ClientError

_LIMIT = 2**53
T = TypeVar("T")

Long = NewType("Long", int)


class InvalidScalarValue(ClientError):
    """A value a scalar refuses; the message, shown to the client, says why."""


def _parse_long(value: object) -> int:
    # JSON numbers arrive as int, or as float when a client writes 5.0; bools are not numbers.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidScalarValue(f"Long must be an integer, not {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise InvalidScalarValue(f"Long must be an integer, not {value!r}")
    number = int(value)
    if not -_LIMIT < number < _LIMIT:
        raise InvalidScalarValue("Long must be within ±(2^53 - 1)")
    return number


def _parsed(definition: ScalarDefinition, value: object, example: str) -> object:
    parse: Callable[[object], object] | None = definition.parse_value
    assert parse is not None
    # Raised after the handler, not in it, so that no log chains strawberry's raw quote.
    with contextlib.suppress(StrawberryInputCoercionError):
        return parse(value)
    raise InvalidScalarValue(f"{definition.name} must be ISO 8601, like {example}")


def _parse_date(value: object) -> date:
    day = _parsed(DateDefinition, value, "2026-11-22")
    assert isinstance(day, date)
    return day


def _parse_datetime(value: object) -> datetime:
    moment = _parsed(DateTimeDefinition, value, "2026-11-22T10:15:00+00:00")
    assert isinstance(moment, datetime)
    # With its offset applied, 0001-01-01T00:00+01:00 is before year 1: no database
    # driver can send it. A time without an offset is taken as UTC, so it always fits.
    if moment.tzinfo is not None:
        try:
            moment.astimezone(UTC)
        except OverflowError:
            raise InvalidScalarValue("DateTime is out of range once taken to UTC") from None
    return moment


SCALARS: dict[object, ScalarDefinition] = {
    Long: strawberry.scalar(
        name="Long",
        description="64-bit signed integer, sent as a JSON number (|n| < 2^53)",
        serialize=int,
        parse_value=_parse_long,
    ),
    date: dataclasses.replace(DateDefinition, parse_value=_parse_date),
    datetime: dataclasses.replace(DateTimeDefinition, parse_value=_parse_datetime),
}


def given(value: T | None) -> T | None:
    """An optional input field the client left out arrives as UNSET; it means None."""
    return None if value is strawberry.UNSET else value
