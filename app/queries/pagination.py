"""Keyset pagination: opaque cursors over a sort order, and the page and count queries.

A cursor holds the sort key values of the last row seen and the name of the ordering; the
next page is the rows strictly after those values. No OFFSET: rows inserted meanwhile never
shift a page, and every page is an index seek.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    FromClause,
    RowMapping,
    Select,
    and_,
    func,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import TIMESTAMP
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.types import TypeEngine

from app.events.text import storable
from app.queries.errors import InvalidArgument

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
CURSOR_FORMAT = 1
_MAX_CURSOR_LENGTH = 2048
_BIGINT = 2**63

Kind = Literal["time", "int", "text", "uuid"]
_SQL_TYPES: dict[str, TypeEngine[Any]] = {
    "time": TIMESTAMP(timezone=True),
    "uuid": PG_UUID(as_uuid=True),
}


@dataclass(frozen=True, eq=False)
class SortKey:
    """One column (or expression) of an ordering; `kind` says how a cursor stores its value."""

    expression: ColumnElement[Any]
    kind: Kind
    descending: bool = False


@dataclass(frozen=True, eq=False)
class Ordering:
    """A total order over rows; `name` is written into cursors so one cannot cross orders."""

    name: str
    keys: tuple[SortKey, ...]


@dataclass(frozen=True, eq=False)
class Listing:
    """The rows of one read table that match a filter, in one ordering."""

    table: FromClause
    where: tuple[ColumnElement[bool], ...]
    ordering: Ordering


@dataclass(frozen=True)
class Page:
    rows: Sequence[RowMapping]
    cursors: Sequence[str]
    has_next: bool


def page_size(first: int | None) -> int:
    """The page size asked for; None means the default."""
    if first is None:
        return DEFAULT_PAGE_SIZE
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"first must be between 1 and {MAX_PAGE_SIZE}, not {first}")
    return first


def page_query(listing: Listing, size: int, after: Sequence[Any] | None = None) -> Select[Any]:
    """The rows of one page: `size` + 1 of them, so the extra one tells a next page exists."""
    keys = listing.ordering.keys
    labels = [key.expression.label(f"_key{i}") for i, key in enumerate(keys)]
    query = select(listing.table, *labels).where(*listing.where)
    if after is not None:
        query = query.where(_beyond(keys, after))
    order = [key.expression.desc() if key.descending else key.expression.asc() for key in keys]
    return query.order_by(*order).limit(size + 1)


def count_query(listing: Listing) -> Select[Any]:
    """How many rows match the filter, wherever a cursor stands."""
    return select(func.count()).select_from(listing.table).where(*listing.where)


async def fetch_page(
    engine: AsyncEngine, listing: Listing, first: int | None, after: str | None
) -> Page:
    """One page of a listing, after the row a cursor points at (or from the start)."""
    size = page_size(first)
    values = None if after is None else decode_cursor(after, listing.ordering)
    async with engine.connect() as connection:
        result = await connection.execute(page_query(listing, size, values))
        rows = result.mappings().all()
    shown = rows[:size]
    width = len(listing.ordering.keys)
    cursors = [
        encode_cursor(listing.ordering, [row[f"_key{i}"] for i in range(width)]) for row in shown
    ]
    return Page(shown, cursors, len(rows) > size)


async def count_rows(engine: AsyncEngine, listing: Listing) -> int:
    """The number of rows a listing holds (its totalCount)."""
    async with engine.connect() as connection:
        return int(await connection.scalar(count_query(listing)) or 0)


def _beyond(keys: Sequence[SortKey], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows strictly after `values` in the ordering."""
    bounds = [
        literal(value, _SQL_TYPES.get(key.kind)) for key, value in zip(keys, values, strict=True)
    ]
    if len({key.descending for key in keys}) == 1:
        # One direction: a row comparison, which a btree index seeks to directly.
        left, right = tuple_(*(key.expression for key in keys)), tuple_(*bounds)
        return left < right if keys[0].descending else left > right
    # Mixed directions: each key beyond its value with the ones before it equal, plus a
    # redundant bound on the first key so the index scan starts at the cursor.
    alternatives = [
        and_(
            *(k.expression == b for k, b in zip(keys[:i], bounds[:i], strict=True)),
            _past(keys[i], bounds[i], strictly=True),
        )
        for i in range(len(keys))
    ]
    return and_(_past(keys[0], bounds[0], strictly=False), or_(*alternatives))


def _past(key: SortKey, bound: ColumnElement[Any], *, strictly: bool) -> ColumnElement[bool]:
    if key.descending:
        return key.expression < bound if strictly else key.expression <= bound
    return key.expression > bound if strictly else key.expression >= bound


def encode_cursor(ordering: Ordering, values: Sequence[Any]) -> str:
    """The opaque cursor for a row with these sort key values."""
    stored = [_stored(key.kind, value) for key, value in zip(ordering.keys, values, strict=True)]
    # Not ASCII-escaped: PostgreSQL writes the same bytes for the compiled read path.
    body = {"v": CURSOR_FORMAT, "o": ordering.name, "k": stored}
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, ordering: Ordering) -> tuple[Any, ...]:
    """The sort key values a cursor holds; InvalidArgument unless it continues `ordering`."""
    body = _cursor_body(cursor)
    if body.get("o") != ordering.name:
        raise InvalidArgument(
            "after is a cursor of another list or sort order; "
            "pass the endCursor of this same query, or leave after out to start again"
        )
    stored = body.get("k")
    if not isinstance(stored, list) or len(stored) != len(ordering.keys):
        raise InvalidArgument("after is not a cursor issued by this service")
    try:
        return tuple(
            _loaded(key.kind, value) for key, value in zip(ordering.keys, stored, strict=True)
        )
    except (TypeError, ValueError, OverflowError) as error:
        raise InvalidArgument("after is not a cursor issued by this service") from error


def _cursor_body(cursor: str) -> dict[str, Any]:
    try:
        if len(cursor) > _MAX_CURSOR_LENGTH:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        body = json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise InvalidArgument("after is not a cursor issued by this service") from error
    if not isinstance(body, dict) or body.get("v") != CURSOR_FORMAT:
        raise InvalidArgument("after is not a cursor issued by this service")
    return body


def _stored(kind: Kind, value: Any) -> Any:
    if kind == "time":
        return value.isoformat()
    if kind == "uuid":
        return value.hex
    return value


def _loaded(kind: Kind, value: Any) -> Any:
    if kind == "time":
        moment = datetime.fromisoformat(_of(value, str))
        if moment.tzinfo is None:
            raise ValueError("a cursor's time has a UTC offset")
        moment.astimezone(UTC)  # OverflowError past year 1..9999 in UTC, as the driver sends it
        return moment
    if kind == "uuid":
        return UUID(hex=_of(value, str))
    if kind == "int":
        number = _of(value, int)
        if isinstance(number, bool) or not -_BIGINT <= number < _BIGINT:
            raise ValueError("out of range")
        return number
    text = _of(value, str)
    if not storable(text):  # no stored name holds what PostgreSQL text cannot
        raise ValueError("NUL or a lone surrogate in a cursor")
    return text


def _of(value: Any, kind: type) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"expected {kind.__name__}")
    return value
