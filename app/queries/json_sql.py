"""The read models' GraphQL types as SQL: each selected field of a row as a JSON value.

The compiled read path (app/queries/compiled.py) answers a query with one statement whose
result is the response's `data`, built by PostgreSQL with `json_build_object`. This module
says how each field of each type reads off its read-table row, and writes values exactly as
the reference executor (strawberry, app/queries/types.py) serializes them: ids as UUID text,
DateTime as Python's `isoformat()` of a UTC time, Date as ISO, Long and Int as numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement
from sqlalchemy.dialects.postgresql.base import PGDialect

from app.queries.pagination import CURSOR_FORMAT, Ordering

_DIALECT = PGDialect()  # type: ignore[no-untyped-call]

MAX_JSON_PAIRS = 50
"""json_build_object takes at most 100 arguments: 50 fields of one object. A selection with
more (aliases) goes to the reference executor."""


def literal(text: str) -> str:
    """A SQL string literal (the names written this way are GraphQL names and type names)."""
    return "'" + text.replace("'", "''") + "'"


def iso_time(expression: str) -> str:
    """A timestamptz as Python's isoformat() of it in UTC: microseconds only when not zero."""
    utc = f"({expression} AT TIME ZONE 'UTC')"
    return (
        f"(to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN "
        f"date_part('microseconds', {expression})::bigint % 1000000 = 0 THEN '' "
        f"ELSE to_char({utc}, '.US') END || '+00:00')"
    )


def iso_date(expression: str) -> str:
    return f"to_char({expression}, 'YYYY-MM-DD')"


_COMPILED: dict[int, tuple[ColumnElement[object], str]] = {}


def sql_of(expression: ColumnElement[object]) -> str:
    """A SQLAlchemy column expression (no bound values) as PostgreSQL text, compiled once:
    these are the listings' fixed sort keys (app/queries/pagination.py), asked for on every
    request."""
    known = _COMPILED.get(id(expression))
    if known is not None and known[0] is expression:
        return known[1]
    text = str(expression.compile(dialect=_DIALECT))
    _COMPILED[id(expression)] = (expression, text)  # holds it: its id stays its own
    return text


def json_object(pairs: Sequence[tuple[str, str]]) -> str:
    """json_build_object of (response key, SQL value) pairs, in the order selected."""
    if len(pairs) > MAX_JSON_PAIRS:
        raise TooWide(len(pairs))
    return "json_build_object(" + ", ".join(f"{literal(k)}, {v}" for k, v in pairs) + ")"


class TooWide(Exception):
    """More fields on one object than json_build_object takes."""


# How a cursor stores each kind of sort key value, as app/queries/pagination.py writes it.
_CURSOR_VALUE: dict[str, Callable[[str], str]] = {
    "time": lambda e: f"to_json({iso_time(e)})::text",
    "uuid": lambda e: f"to_json(replace({e}::text, '-', ''))::text",
    "int": lambda e: f"({e})::text",
    "text": lambda e: f"to_json(({e})::text)::text",
}


def cursor(ordering: Ordering, key_columns: Sequence[str]) -> str:
    """The opaque cursor of a row whose sort key values are in `key_columns`: the same bytes
    as `encode_cursor` (compact JSON, then URL-safe base64 without padding)."""
    head = f'{{"v":{CURSOR_FORMAT},"o":' + _json_text(ordering.name) + ',"k":['
    values = " || ',' || ".join(
        _CURSOR_VALUE[key.kind](column)
        for key, column in zip(ordering.keys, key_columns, strict=True)
    )
    body = f"{literal(head)} || {values} || ']}}'"
    return f"rtrim(translate(encode(convert_to({body}, 'UTF8'), 'base64'), E'+/\\n', '-_'), '=')"


def _json_text(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Column:
    """A scalar field read straight off a row: `sql` is a format with `{row}`."""

    sql: str

    def at(self, row: str) -> str:
        return self.sql.replace("{row}", row)


def _id(column: str) -> Column:
    return Column(f"{{row}}.{column}::text")


def _time(column: str) -> Column:
    return Column(iso_time(f"{{row}}.{column}"))


def _plain(column: str) -> Column:
    return Column(f"{{row}}.{column}")


# The scalar fields of each read type, by GraphQL field name.
ORDER_FIELDS = {
    "id": _id("id"),
    "status": _plain("status"),
    "itemCount": _plain("item_count"),
    "totalCents": _plain("total_cents"),
    "placedAt": _time("placed_at"),
    "updatedAt": _time("updated_at"),
    "cancelReason": _plain("cancel_reason"),
    "version": _plain("version"),
}
ORDER_HISTORY_FIELDS = {
    "version": _plain("version"),
    "event": _plain("event"),
    "status": _plain("status"),
    "at": _time("at"),
}
ORDER_CUSTOMER_FIELDS = {
    "id": _id("customer_id"),
    "name": _plain("customer_name"),
    "email": _plain("customer_email"),
}
# Lines are kept as JSON in order_view, with the contract's field names as keys.
ORDER_LINE_FIELDS = {
    name: Column(f"{{row}}->'{name}'")
    for name in ("productId", "sku", "productName", "quantity", "unitPriceCents", "lineTotalCents")
}
CUSTOMER_FIELDS = {
    "id": _id("id"),
    "email": _plain("email"),
    "name": _plain("name"),
    "registeredAt": _time("registered_at"),
    "orderCount": _plain("order_count"),
    "totalSpentCents": _plain("total_spent_cents"),
    "lastOrderAt": _time("last_order_at"),
    "version": _plain("version"),
}
PRODUCT_FIELDS = {
    "id": _id("id"),
    "sku": _plain("sku"),
    "name": _plain("name"),
    "priceCents": _plain("price_cents"),
    "stock": _plain("stock"),
    "unitsSold": _plain("units_sold"),
    "revenueCents": _plain("revenue_cents"),
    "version": _plain("version"),
}
DAILY_SALES_FIELDS = {
    "date": Column(iso_date("{row}.day")),
    **{
        name: Column(f"coalesce({{row}}.{column}, 0)")
        for name, column in (
            ("ordersPlaced", "orders_placed"),
            ("ordersCancelled", "orders_cancelled"),
            ("itemsSold", "items_sold"),
            ("revenueCents", "revenue_cents"),
        )
    },
}
