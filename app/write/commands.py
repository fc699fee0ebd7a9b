"""Commands: what a client asks the shop to do, in the imperative. One handler each.

Ids arrive parsed: None stands for a client-given id that is not a UUID, so names nothing
(the handler reports it as not found, like an id that names nothing stored).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID


@dataclass(frozen=True, kw_only=True)
class Command:
    """Every command may carry a client-chosen idempotency key."""

    command_id: str | None = field(default=None, compare=False)


@dataclass(frozen=True, kw_only=True)
class RegisterCustomer(Command):
    email: str
    name: str


@dataclass(frozen=True, kw_only=True)
class CreateProduct(Command):
    sku: str
    name: str
    price_cents: int
    stock: int


@dataclass(frozen=True, kw_only=True)
class ChangeProductPrice(Command):
    product_id: UUID | None
    price_cents: int
    expected_version: int | None = None


@dataclass(frozen=True, kw_only=True)
class RestockProduct(Command):
    product_id: UUID | None
    quantity: int


@dataclass(frozen=True, kw_only=True)
class PlaceOrder(Command):
    customer_id: UUID | None
    lines: tuple[OrderLine, ...]


@dataclass(frozen=True, kw_only=True)
class OrderLine:
    product_id: UUID | None
    quantity: int


@dataclass(frozen=True, kw_only=True)
class PayOrder(Command):
    order_id: UUID | None
    expected_version: int | None = None


@dataclass(frozen=True, kw_only=True)
class ShipOrder(Command):
    order_id: UUID | None
    expected_version: int | None = None


@dataclass(frozen=True, kw_only=True)
class CancelOrder(Command):
    order_id: UUID | None
    reason: str | None = None
    expected_version: int | None = None
