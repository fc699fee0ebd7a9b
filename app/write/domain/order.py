"""Order: lines reserved from stock at placing; PLACED -> PAID -> SHIPPED, or CANCELLED."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from app.events import OrderCancelled, OrderPaid, OrderPlaced, OrderShipped, PlacedLine
from app.write.domain import rules
from app.write.domain.aggregate import Aggregate
from app.write.domain.customer import Customer
from app.write.domain.errors import ErrorCode, UserError, raise_if_any, reject
from app.write.domain.product import Product


class OrderStatus(StrEnum):
    PLACED = "PLACED"
    PAID = "PAID"
    SHIPPED = "SHIPPED"
    CANCELLED = "CANCELLED"


_ALLOWED = {
    OrderStatus.PAID: {OrderStatus.PLACED},
    OrderStatus.SHIPPED: {OrderStatus.PAID},
    OrderStatus.CANCELLED: {OrderStatus.PLACED, OrderStatus.PAID},
}


@dataclass(frozen=True)
class LineRequest:
    """An order line as asked for; product_id is None when the given id cannot exist."""

    product_id: UUID | None
    quantity: int


def check_lines(lines: Sequence[LineRequest]) -> None:
    """Rules on the lines alone, before anything is loaded: count, quantities, no repeats."""
    if not 1 <= len(lines) <= rules.MAX_ORDER_LINES:
        raise reject(
            ErrorCode.VALIDATION,
            f"an order has 1 to {rules.MAX_ORDER_LINES} lines, not {len(lines)}",
            "lines",
        )
    errors: list[UserError] = []
    seen: set[UUID] = set()
    for index, line in enumerate(lines):
        path = ("lines", str(index))
        if not 1 <= line.quantity <= rules.MAX_LINE_QUANTITY:
            message = f"quantity must be between 1 and {rules.MAX_LINE_QUANTITY}"
            errors.append(UserError(ErrorCode.VALIDATION, message, (*path, "quantity")))
        if line.product_id is not None and line.product_id in seen:
            message = "a product may appear in at most one line"
            errors.append(UserError(ErrorCode.VALIDATION, message, (*path, "productId")))
        if line.product_id is not None:
            seen.add(line.product_id)
    raise_if_any(errors)


class Order(Aggregate):
    def __init__(
        self,
        order_id: UUID,
        version: int,
        customer_id: UUID,
        status: OrderStatus,
        lines: tuple[PlacedLine, ...],
        placed_at: datetime,
        cancel_reason: str | None = None,
    ) -> None:
        super().__init__(order_id, version)
        self.customer_id = customer_id
        self.status = status
        self.lines = lines
        self.placed_at = placed_at
        self.cancel_reason = cancel_reason

    @property
    def item_count(self) -> int:
        return sum(line.quantity for line in self.lines)

    @property
    def total_cents(self) -> int:
        return sum(line.line_total_cents for line in self.lines)

    @classmethod
    def place(
        cls,
        order_id: UUID,
        customer: Customer | None,
        requests: Sequence[LineRequest],
        products: Mapping[UUID, Product],
        now: datetime,
    ) -> Order:
        """Reserve stock for every line, all or none, and record the order as placed."""
        check_lines(requests)
        if customer is None:
            raise reject(ErrorCode.NOT_FOUND, "no such customer", "customerId")
        found = _existing_products(requests, products)
        _require_stock(requests, found)
        lines = []
        for request, product in zip(requests, found, strict=True):
            product.reserve(request.quantity)
            lines.append(
                PlacedLine.priced(
                    product.id, product.sku, product.name, product.price_cents, request.quantity
                )
            )
        order = cls(order_id, 0, customer.id, OrderStatus.PLACED, tuple(lines), now)
        order.record(
            OrderPlaced(
                order_id, customer.id, customer.name, customer.email, order.lines,
                order.item_count, order.total_cents, now,
            )
        )  # fmt: skip
        return order

    def pay(self, expected_version: int | None) -> None:
        self._move_to(OrderStatus.PAID, expected_version)
        self.record(OrderPaid(self.id, self.customer_id))

    def ship(self, expected_version: int | None) -> None:
        self._move_to(OrderStatus.SHIPPED, expected_version)
        self.record(OrderShipped(self.id, self.customer_id))

    def cancel(
        self, reason: str | None, expected_version: int | None, products: Mapping[UUID, Product]
    ) -> None:
        """Cancel and give every line's stock back to its product."""
        errors: list[UserError] = []
        reason = rules.reason(reason, errors)
        raise_if_any(errors)
        previous = self.status
        self._move_to(OrderStatus.CANCELLED, expected_version, check_only=True)
        for line in self.lines:
            products[line.product_id].release(line.quantity)
        self.status = OrderStatus.CANCELLED
        self.cancel_reason = reason
        self.record(
            OrderCancelled(
                self.id, self.customer_id, reason, previous.value, self.lines,
                self.item_count, self.total_cents, self.placed_at,
            )
        )  # fmt: skip

    def _move_to(
        self, target: OrderStatus, expected_version: int | None, *, check_only: bool = False
    ) -> None:
        self.require_version(expected_version)
        if self.status not in _ALLOWED[target]:
            raise reject(
                ErrorCode.INVALID_STATE,
                f"an order that is {self.status.value} cannot become {target.value}",
                "orderId",
            )
        if not check_only:
            self.status = target


def _existing_products(
    requests: Sequence[LineRequest], products: Mapping[UUID, Product]
) -> list[Product]:
    errors: list[UserError] = []
    found: list[Product] = []
    for index, request in enumerate(requests):
        product = products.get(request.product_id) if request.product_id else None
        if product is None:
            path = ("lines", str(index), "productId")
            errors.append(UserError(ErrorCode.NOT_FOUND, "no such product", path))
        else:
            found.append(product)
    raise_if_any(errors)
    return found


def _require_stock(requests: Sequence[LineRequest], products: Sequence[Product]) -> None:
    errors = [
        UserError(
            ErrorCode.INSUFFICIENT_STOCK,
            f"{product.sku} has {product.stock} in stock, {request.quantity} asked for",
            ("lines", str(index), "quantity"),
        )
        for index, (request, product) in enumerate(zip(requests, products, strict=True))
        if not product.has_stock(request.quantity)
    ]
    raise_if_any(errors)
