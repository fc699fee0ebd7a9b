"""The contract's mutation inputs, and the commands they become (ids parsed here, once)."""

from __future__ import annotations

import strawberry

from app.graphql.ids import parse_id
from app.graphql.scalars import Long, given
from app.write import commands


@strawberry.input
class RegisterCustomerInput:
    email: str
    name: str
    command_id: strawberry.ID | None = strawberry.UNSET

    def command(self) -> commands.RegisterCustomer:
        return commands.RegisterCustomer(
            command_id=given(self.command_id), email=self.email, name=self.name
        )


@strawberry.input
class CreateProductInput:
    sku: str
    name: str
    price_cents: Long
    stock: int
    command_id: strawberry.ID | None = strawberry.UNSET

    def command(self) -> commands.CreateProduct:
        return commands.CreateProduct(
            command_id=given(self.command_id),
            sku=self.sku,
            name=self.name,
            price_cents=self.price_cents,
            stock=self.stock,
        )


@strawberry.input
class ChangeProductPriceInput:
    product_id: strawberry.ID
    price_cents: Long
    expected_version: int | None = strawberry.UNSET
    command_id: strawberry.ID | None = strawberry.UNSET

    def command(self) -> commands.ChangeProductPrice:
        return commands.ChangeProductPrice(
            command_id=given(self.command_id),
            product_id=parse_id(self.product_id),
            price_cents=self.price_cents,
            expected_version=given(self.expected_version),
        )


@strawberry.input
class RestockProductInput:
    product_id: strawberry.ID
    quantity: int
    command_id: strawberry.ID | None = strawberry.UNSET

    def command(self) -> commands.RestockProduct:
        return commands.RestockProduct(
            command_id=given(self.command_id),
            product_id=parse_id(self.product_id),
            quantity=self.quantity,
        )


@strawberry.input
class OrderLineInput:
    product_id: strawberry.ID
    quantity: int


@strawberry.input
class PlaceOrderInput:
    customer_id: strawberry.ID
    lines: list[OrderLineInput]
    command_id: strawberry.ID | None = strawberry.UNSET

    def command(self) -> commands.PlaceOrder:
        return commands.PlaceOrder(
            command_id=given(self.command_id),
            customer_id=parse_id(self.customer_id),
            lines=tuple(
                commands.OrderLine(product_id=parse_id(line.product_id), quantity=line.quantity)
                for line in self.lines
            ),
        )


@strawberry.input
class PayOrderInput:
    order_id: strawberry.ID
    expected_version: int | None = strawberry.UNSET
    command_id: strawberry.ID | None = strawberry.UNSET

    def command(self) -> commands.PayOrder:
        return commands.PayOrder(
            command_id=given(self.command_id),
            order_id=parse_id(self.order_id),
            expected_version=given(self.expected_version),
        )


@strawberry.input
class ShipOrderInput:
    order_id: strawberry.ID
    expected_version: int | None = strawberry.UNSET
    command_id: strawberry.ID | None = strawberry.UNSET

    def command(self) -> commands.ShipOrder:
        return commands.ShipOrder(
            command_id=given(self.command_id),
            order_id=parse_id(self.order_id),
            expected_version=given(self.expected_version),
        )


@strawberry.input
class CancelOrderInput:
    order_id: strawberry.ID
    reason: str | None = strawberry.UNSET
    expected_version: int | None = strawberry.UNSET
    command_id: strawberry.ID | None = strawberry.UNSET

    def command(self) -> commands.CancelOrder:
        return commands.CancelOrder(
            command_id=given(self.command_id),
            order_id=parse_id(self.order_id),
            reason=given(self.reason),
            expected_version=given(self.expected_version),
        )
