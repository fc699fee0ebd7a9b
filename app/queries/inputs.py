"""The contract's query inputs: filters and sort orders, and what they mean to the listings."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum

import strawberry

from app.events.text import storable
from app.graphql.ids import parse_id
from app.graphql.scalars import Long, given
from app.queries.errors import InvalidArgument
from app.queries.listings import MAX_SEARCH_LENGTH, OrderCriteria
from app.queries.types import OrderStatus


@strawberry.enum
class CustomerOrderBy(Enum):
    NEWEST = "NEWEST"
    TOTAL_SPENT_DESC = "TOTAL_SPENT_DESC"
    NAME = "NAME"


@strawberry.enum
class ProductOrderBy(Enum):
    NAME = "NAME"
    PRICE_ASC = "PRICE_ASC"
    PRICE_DESC = "PRICE_DESC"
    UNITS_SOLD_DESC = "UNITS_SOLD_DESC"


@strawberry.input
class OrderFilter:
    customer_id: strawberry.ID | None = strawberry.UNSET
    status: list[OrderStatus] | None = strawberry.UNSET
    placed_from: datetime | None = strawberry.field(
        default=strawberry.UNSET, description="Inclusive."
    )
    placed_to: datetime | None = strawberry.field(
        default=strawberry.UNSET, description="Exclusive."
    )
    min_total_cents: Long | None = strawberry.UNSET

    def criteria(self) -> OrderCriteria:
        """The filter as listing criteria; a customer id that cannot exist matches nothing."""
        customer = given(self.customer_id)
        customer_id = parse_id(customer)
        statuses = given(self.status)
        return OrderCriteria(
            customer_id=customer_id,
            statuses=None if statuses is None else tuple(s.value for s in statuses),
            placed_from=_aware(given(self.placed_from)),
            placed_to=_aware(given(self.placed_to)),
            min_total_cents=given(self.min_total_cents),
            matches_nothing=customer is not None and customer_id is None,
        )


@strawberry.input
class ProductFilter:
    search: str | None = strawberry.field(
        default=strawberry.UNSET, description="Case-insensitive, in name or sku."
    )
    in_stock: bool | None = strawberry.UNSET

    def search_text(self) -> str | None:
        text = given(self.search)
        if text is not None and len(text) > MAX_SEARCH_LENGTH:
            raise InvalidArgument(f"search must be at most {MAX_SEARCH_LENGTH} characters")
        if text is not None and not storable(text):
            raise InvalidArgument("search must not contain NUL characters or lone surrogates")
        return text or None

    def stock_wanted(self) -> bool | None:
        return given(self.in_stock)


def _aware(moment: datetime | None) -> datetime | None:
    """A time without a UTC offset is taken to be UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment
