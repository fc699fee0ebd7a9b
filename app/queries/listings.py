"""The lists the API pages through: which read-table rows match a filter, in which order.

Every filter and ordering here is backed by an index of the read store (see
app/migrations/read/r0001_read_models.py); the expressions are written exactly as the
indexes are, or the planner could not use them. Partial indexes need their predicate as a
literal in the query (`version > 0`), so those are literal columns, never bound parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, false, func, literal, literal_column

from app.projections.tables import customer_summary, order_view, product_catalogue
from app.queries.pagination import Listing, Ordering, SortKey

MAX_SEARCH_LENGTH = 200

_ZERO: ColumnElement[int] = literal_column("0")
_SPACE: ColumnElement[str] = literal_column("' '")
_ORDER = order_view.c
_CUSTOMER = customer_summary.c
_PRODUCT = product_catalogue.c


def _folded(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """Names sort case-insensitively, bytewise: lower(name) COLLATE "C", as indexed."""
    return func.lower(column).collate("C")


ORDERS_NEWEST = Ordering(
    "orders:newest", (SortKey(_ORDER.placed_at, "time", True), SortKey(_ORDER.id, "uuid", True))
)


# The contract's CustomerOrderBy values, as orderings of customer_summary.
CUSTOMER_ORDERINGS = {
    "NEWEST": Ordering(
        "customers:newest",
        (SortKey(_CUSTOMER.registered_at, "time", True), SortKey(_CUSTOMER.id, "uuid", True)),
    ),
    "TOTAL_SPENT_DESC": Ordering(
        "customers:spent",
        (SortKey(_CUSTOMER.total_spent_cents, "int", True), SortKey(_CUSTOMER.id, "uuid", True)),
    ),
    "NAME": Ordering(
        "customers:name", (SortKey(_folded(_CUSTOMER.name), "text"), SortKey(_CUSTOMER.id, "uuid"))
    ),
}

# The contract's ProductOrderBy values, as orderings of product_catalogue.
PRODUCT_ORDERINGS = {
    "NAME": Ordering(
        "products:name", (SortKey(_folded(_PRODUCT.name), "text"), SortKey(_PRODUCT.id, "uuid"))
    ),
    "PRICE_ASC": Ordering(
        "products:price-asc", (SortKey(_PRODUCT.price_cents, "int"), SortKey(_PRODUCT.id, "uuid"))
    ),
    # Ties by id descending too: that is the (price_cents, id) index read backwards.
    "PRICE_DESC": Ordering(
        "products:price-desc",
        (SortKey(_PRODUCT.price_cents, "int", True), SortKey(_PRODUCT.id, "uuid", True)),
    ),
    "UNITS_SOLD_DESC": Ordering(
        "products:sold",
        (SortKey(_PRODUCT.units_sold, "int", True), SortKey(_PRODUCT.id, "uuid")),
    ),
}


@dataclass(frozen=True)
class OrderCriteria:
    """An orders filter; None means "any". A customer id that cannot exist matches nothing."""

    customer_id: UUID | None = None
    statuses: Sequence[str] | None = None
    placed_from: datetime | None = None  # inclusive
    placed_to: datetime | None = None  # exclusive
    min_total_cents: int | None = None
    matches_nothing: bool = False


def orders_listing(criteria: OrderCriteria) -> Listing:
    """Orders matching the criteria, newest first."""
    where: list[ColumnElement[bool]] = []
    if criteria.matches_nothing:
        where.append(false())
    if criteria.customer_id is not None:
        where.append(_ORDER.customer_id == criteria.customer_id)
    if criteria.statuses is not None:
        # One bind parameter per distinct status: a repeated list could pass asyncpg's 32,767.
        where.append(_ORDER.status.in_(sorted(set(criteria.statuses))))
    if criteria.placed_from is not None:
        where.append(_ORDER.placed_at >= criteria.placed_from)
    if criteria.placed_to is not None:
        where.append(_ORDER.placed_at < criteria.placed_to)
    if criteria.min_total_cents is not None:
        where.append(_ORDER.total_cents >= criteria.min_total_cents)
    return Listing(order_view, tuple(where), ORDERS_NEWEST)


def customers_listing(ordering: Ordering) -> Listing:
    """Customers whose registration has been projected, in the given order."""
    return Listing(customer_summary, (_CUSTOMER.version > _ZERO,), ordering)


def products_listing(ordering: Ordering, search: str | None, in_stock: bool | None) -> Listing:
    """Created products, optionally matching a search text and in stock or not."""
    where: list[ColumnElement[bool]] = [_PRODUCT.version > _ZERO]
    if search:
        # The trigram index covers exactly this expression.
        searched = func.lower(_PRODUCT.name).concat(_SPACE).concat(func.lower(_PRODUCT.sku))
        pattern = literal("%").concat(func.lower(like_escaped(search))).concat("%")
        where.append(searched.like(pattern, escape="\\"))
    if in_stock is True:
        where.append(_PRODUCT.stock > _ZERO)
    elif in_stock is False:
        where.append(_PRODUCT.stock <= _ZERO)
    return Listing(product_catalogue, tuple(where), ordering)


def like_escaped(text: str) -> str:
    """The text as a LIKE pattern that matches it literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
