"""The events: what happened, in the past tense, carrying all a projection needs.

Both sides import this module and nothing else of each other: the write side records these
events, the read side applies them. An event never makes a projection look anything up in
the write store, so OrderPlaced carries the customer's name and email and each line's sku,
product name and price as of placing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar
from uuid import UUID

from app.events.upcasting import Upcast, lines_gain


@dataclass(frozen=True)
class Event:
    """Something that happened to one aggregate."""

    aggregate_type: ClassVar[str]
    # The shape this code writes, and the steps from each older one to the next: see
    # app/events/upcasting.py. A type's schema_version is len(upcasts) + 1.
    schema_version: ClassVar[int] = 1
    upcasts: ClassVar[tuple[Upcast, ...]] = ()

    @property
    def aggregate_id(self) -> UUID:
        raise NotImplementedError

    @classmethod
    def type_name(cls) -> str:
        return cls.__name__


@dataclass(frozen=True)
class CustomerEvent(Event):
    aggregate_type: ClassVar[str] = "Customer"
    customer_id: UUID

    @property
    def aggregate_id(self) -> UUID:
        return self.customer_id


@dataclass(frozen=True)
class ProductEvent(Event):
    aggregate_type: ClassVar[str] = "Product"
    product_id: UUID

    @property
    def aggregate_id(self) -> UUID:
        return self.product_id


@dataclass(frozen=True)
class OrderEvent(Event):
    aggregate_type: ClassVar[str] = "Order"
    order_id: UUID
    customer_id: UUID

    @property
    def aggregate_id(self) -> UUID:
        return self.order_id


@dataclass(frozen=True)
class CustomerRegistered(CustomerEvent):
    email: str
    name: str
    registered_at: datetime


@dataclass(frozen=True)
class ProductCreated(ProductEvent):
    sku: str
    name: str
    price_cents: int
    stock: int
    created_at: datetime


@dataclass(frozen=True)
class ProductPriceChanged(ProductEvent):
    price_cents: int
    previous_price_cents: int


@dataclass(frozen=True)
class ProductRestocked(ProductEvent):
    quantity: int
    stock: int  # after the restock, as the write store counts it


@dataclass(frozen=True)
class PlacedLine:
    """One order line as it was when the order was placed, with what it costs: the read
    models copy the line total, they do not price the line again."""

    product_id: UUID
    sku: str
    product_name: str
    unit_price_cents: int
    quantity: int
    line_total_cents: int

    @classmethod
    def priced(
        cls, product_id: UUID, sku: str, product_name: str, unit_price_cents: int, quantity: int
    ) -> PlacedLine:
        """A line at its unit price: the total is the price times the quantity."""
        return cls(
            product_id, sku, product_name, unit_price_cents, quantity, unit_price_cents * quantity
        )


# v1 lines carried no total: the write side then always charged the price times the quantity.
_LINES_GAIN_TOTALS = lines_gain(
    "line_total_cents", lambda line: line["unit_price_cents"] * line["quantity"]
)


@dataclass(frozen=True)
class OrderPlaced(OrderEvent):
    schema_version: ClassVar[int] = 2
    upcasts: ClassVar[tuple[Upcast, ...]] = (_LINES_GAIN_TOTALS,)  # v2: line_total_cents

    customer_name: str
    customer_email: str
    lines: tuple[PlacedLine, ...]
    item_count: int
    total_cents: int
    placed_at: datetime


@dataclass(frozen=True)
class OrderPaid(OrderEvent):
    pass


@dataclass(frozen=True)
class OrderShipped(OrderEvent):
    pass


@dataclass(frozen=True)
class OrderCancelled(OrderEvent):
    """Cancelled, with its stock released; repeats what projections need to undo the order."""

    schema_version: ClassVar[int] = 2
    upcasts: ClassVar[tuple[Upcast, ...]] = (_LINES_GAIN_TOTALS,)  # v2: line_total_cents

    reason: str | None
    previous_status: str
    lines: tuple[PlacedLine, ...]
    item_count: int
    total_cents: int
    placed_at: datetime


EVENT_TYPES: tuple[type[Event], ...] = (
    CustomerRegistered,
    ProductCreated,
    ProductPriceChanged,
    ProductRestocked,
    OrderPlaced,
    OrderPaid,
    OrderShipped,
    OrderCancelled,
)
