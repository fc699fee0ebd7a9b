"""GraphQL scalars of the contract beyond strawberry's own (DateTime and Date are built in).

`Long` is a plain int to Python and type checkers; `SCALARS` tells the schema how to send and
read it.
"""

from __future__ import annotations

from typing import NewType, TypeVar

import strawberry
from strawberry.types.scalar import ScalarDefinition

_LIMIT = 2**53
T = TypeVar("T")

Long = NewType("Long", int)


def _parse_long(value: object) -> int:
    # JSON numbers arrive as int, or as float when a client writes 5.0; bools are not numbers.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"Long must be an integer, not {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"Long must be an integer, not {value!r}")
    number = int(value)
    if not -_LIMIT < number < _LIMIT:
        raise ValueError("Long must be within ±(2^53 - 1)")
    return number


SCALARS: dict[object, ScalarDefinition] = {
    Long: strawberry.scalar(
        name="Long",
        description="64-bit signed integer, sent as a JSON number (|n| < 2^53)",
        serialize=int,
        parse_value=_parse_long,
    )
}


def given(value: T | None) -> T | None:
    """An optional input field the client left out arrives as UNSET; it means None."""
    return None if value is strawberry.UNSET else value
