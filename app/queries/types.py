"""The read models as GraphQL types, exactly as the contract names them, made from rows."""

from __future__ import annotations

from datetime import date as CalendarDate
from datetime import datetime
from enum import Enum
from typing import Any

import strawberry
from sqlalchemy import RowMapping
from strawberry.types import Info

from app.graphql.context import Context
from app.graphql.ids import parse_id
from app.graphql.scalars import Long
from app.pipeline import status as projection_status
from app.queries.connections import Connection, paged
from app.queries.listings import OrderCriteria, orders_listing
from app.queries.rows import read_order_history


@strawberry.enum
class OrderStatus(Enum):
    PLACED = "PLACED"
    PAID = "PAID"
    SHIPPED = "SHIPPED"
    CANCELLED = "CANCELLED"


@strawberry.type
class OrderCustomer:
    id: strawberry.ID
    name: str
    email: str


@strawberry.type
class OrderLine:
    product_id: strawberry.ID
    sku: str
    product_name: str = strawberry.field(description="As it was when the order was placed.")
    quantity: int
    unit_price_cents: Long = strawberry.field(description="As it was when the order was placed.")
    line_total_cents: Long

    @classmethod
    def from_json(cls, line: dict[str, Any]) -> OrderLine:
        return cls(
            product_id=strawberry.ID(line["productId"]),
            sku=line["sku"],
            product_name=line["productName"],
            quantity=line["quantity"],
            unit_price_cents=line["unitPriceCents"],
            line_total_cents=line["lineTotalCents"],
        )


@strawberry.type
class OrderHistoryEntry:
    version: int = strawberry.field(description="The order's version after this event.")
    event: str = strawberry.field(
        description="OrderPlaced, OrderPaid, OrderShipped or OrderCancelled."
    )
    status: OrderStatus = strawberry.field(description="The order's status after it.")
    at: datetime

    @classmethod
    def from_row(cls, row: RowMapping) -> OrderHistoryEntry:
        return cls(
            version=row["version"], event=row["event"], status=OrderStatus(row["status"]),
            at=row["at"],
        )  # fmt: skip


@strawberry.type
class Order:
    id: strawberry.ID
    status: OrderStatus
    customer: OrderCustomer
    lines: list[OrderLine] = strawberry.field(description="In the order they were given.")
    item_count: int = strawberry.field(description="The sum of the lines' quantities.")
    total_cents: Long
    placed_at: datetime
    updated_at: datetime
    cancel_reason: str | None
    version: int

    @strawberry.field(description="Oldest first, read from the order_history projection.")
    async def history(self, info: Info[Context, None]) -> list[OrderHistoryEntry]:
        order_id = parse_id(self.id)
        assert order_id is not None, "an order's own id"
        rows = await read_order_history(info.context.services.query_engine, order_id)
        # Up to the version the order shows: order_history may be an event ahead of it.
        return [OrderHistoryEntry.from_row(row) for row in rows if row["version"] <= self.version]

    @classmethod
    def from_row(cls, row: RowMapping) -> Order:
        customer = OrderCustomer(
            id=strawberry.ID(str(row["customer_id"])),
            name=row["customer_name"],
            email=row["customer_email"],
        )
        return cls(
            id=strawberry.ID(str(row["id"])),
            status=OrderStatus(row["status"]),
            customer=customer,
            lines=[OrderLine.from_json(line) for line in row["lines"]],
            item_count=row["item_count"],
            total_cents=row["total_cents"],
            placed_at=row["placed_at"],
            updated_at=row["updated_at"],
            cancel_reason=row["cancel_reason"],
            version=row["version"],
        )


@strawberry.type
class Customer:
    id: strawberry.ID
    email: str
    name: str
    registered_at: datetime
    order_count: int = strawberry.field(description="Orders placed and not cancelled.")
    total_spent_cents: Long = strawberry.field(description="Totals of orders not cancelled.")
    last_order_at: datetime | None
    version: int

    @strawberry.field(description="The customer's orders, newest first.")
    async def orders(
        self, info: Info[Context, None], first: int | None = 20, after: str | None = None
    ) -> Connection[Order]:
        listing = orders_listing(OrderCriteria(customer_id=parse_id(self.id)))
        engine = info.context.services.query_engine
        return await paged(engine, listing, first, after, Order.from_row)

    @classmethod
    def from_row(cls, row: RowMapping) -> Customer:
        return cls(
            id=strawberry.ID(str(row["id"])),
            email=row["email"],
            name=row["name"],
            registered_at=row["registered_at"],
            order_count=row["order_count"],
            total_spent_cents=row["total_spent_cents"],
            last_order_at=row["last_order_at"],
            version=row["version"],
        )


@strawberry.type
class Product:
    id: strawberry.ID
    sku: str
    name: str
    price_cents: Long
    stock: int = strawberry.field(description="Units available to order now.")
    units_sold: int = strawberry.field(description="Units in orders not cancelled.")
    revenue_cents: Long = strawberry.field(description="Line totals in orders not cancelled.")
    version: int

    @classmethod
    def from_row(cls, row: RowMapping) -> Product:
        return cls(
            id=strawberry.ID(str(row["id"])),
            sku=row["sku"],
            name=row["name"],
            price_cents=row["price_cents"],
            stock=row["stock"],
            units_sold=row["units_sold"],
            revenue_cents=row["revenue_cents"],
            version=row["version"],
        )


@strawberry.type(description="One UTC day of placement; a cancellation changes its order's day.")
class DailySales:
    date: CalendarDate
    orders_placed: int = strawberry.field(description="Orders placed that day, cancelled or not.")
    orders_cancelled: int = strawberry.field(description="Of those, how many are now cancelled.")
    items_sold: int = strawberry.field(description="Units in that day's orders not cancelled.")
    revenue_cents: Long = strawberry.field(description="Totals of that day's orders not cancelled.")

    @classmethod
    def from_row(cls, row: RowMapping) -> DailySales:
        return cls(
            date=row["day"],
            orders_placed=row["orders_placed"],
            orders_cancelled=row["orders_cancelled"],
            items_sold=row["items_sold"],
            revenue_cents=row["revenue_cents"],
        )


@strawberry.enum
class ProjectionState(Enum):
    LIVE = "LIVE"
    CATCHING_UP = "CATCHING_UP"
    REBUILDING = "REBUILDING"
    STALLED = "STALLED"


@strawberry.type
class ProjectionStatus:
    name: str
    state: ProjectionState
    lag_events: int = strawberry.field(description="Published events not applied yet.")
    lag_seconds: float = strawberry.field(description="Age of the oldest of those; 0 if none.")
    events_applied: Long
    dead_letters: int = strawberry.field(description="Events parked after repeated failures.")
    last_applied_at: datetime | None

    @classmethod
    def of(cls, status: projection_status.ProjectionStatus) -> ProjectionStatus:
        return cls(
            name=status.name,
            state=ProjectionState(status.state),
            lag_events=status.lag_events,
            lag_seconds=status.lag_seconds,
            events_applied=Long(status.events_applied),
            dead_letters=status.dead_letters,
            last_applied_at=status.last_applied_at,
        )
