"""The read models as GraphQL types, exactly as the contract names them."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from app.scalars import Long


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
    product_name: str
    quantity: int
    unit_price_cents: Long
    line_total_cents: Long


@strawberry.type
class Order:
    id: strawberry.ID
    status: OrderStatus
    customer: OrderCustomer
    lines: list[OrderLine]
    item_count: int
    total_cents: Long
    placed_at: datetime
    updated_at: datetime
    cancel_reason: str | None
    version: int


@strawberry.type
class Customer:
    id: strawberry.ID
    email: str
    name: str
    registered_at: datetime
    order_count: int
    total_spent_cents: Long
    last_order_at: datetime | None
    version: int


@strawberry.type
class Product:
    id: strawberry.ID
    sku: str
    name: str
    price_cents: Long
    stock: int
    units_sold: int
    revenue_cents: Long
    version: int
