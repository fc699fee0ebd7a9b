"""Command handlers: load what the command concerns, let the domain decide, hand back the result.

The executor opens the unit of work and commits it; a handler only reads and changes
aggregates through it, and returns the aggregate the command is about.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar
from uuid import UUID

from app.write import commands
from app.write.commands import Command
from app.write.domain.aggregate import Aggregate
from app.write.domain.customer import Customer
from app.write.domain.errors import ErrorCode, reject
from app.write.domain.order import LineRequest, Order, check_lines
from app.write.domain.product import Product
from app.write.ports import UnitOfWork

C = TypeVar("C", bound=Command)
Handler = Callable[[C, UnitOfWork], Awaitable[Aggregate]]


async def register_customer(command: commands.RegisterCustomer, uow: UnitOfWork) -> Customer:
    customer = Customer.register(uuid.uuid4(), command.email, command.name, uow.clock())
    if await uow.customers.email_taken(customer.email):
        raise reject(ErrorCode.ALREADY_EXISTS, "a customer with this email exists", "email")
    uow.customers.add(customer)
    return customer


async def create_product(command: commands.CreateProduct, uow: UnitOfWork) -> Product:
    product = Product.create(
        uuid.uuid4(), command.sku, command.name, command.price_cents, command.stock, uow.clock()
    )
    if await uow.products.sku_taken(product.sku):
        raise reject(ErrorCode.ALREADY_EXISTS, "a product with this sku exists", "sku")
    uow.products.add(product)
    return product


async def change_product_price(command: commands.ChangeProductPrice, uow: UnitOfWork) -> Product:
    product = await _locked_product(uow, command.product_id)
    product.change_price(command.price_cents, command.expected_version)
    return product


async def restock_product(command: commands.RestockProduct, uow: UnitOfWork) -> Product:
    product = await _locked_product(uow, command.product_id)
    product.restock(command.quantity, await uow.products.reserved_units(product.id))
    return product


async def place_order(command: commands.PlaceOrder, uow: UnitOfWork) -> Order:
    requests = [LineRequest(line.product_id, line.quantity) for line in command.lines]
    check_lines(requests)  # before loading anything
    customer_id = command.customer_id
    customer = await uow.customers.get(customer_id) if customer_id is not None else None
    products = await uow.products.lock(r.product_id for r in requests if r.product_id is not None)
    order = Order.place(uuid.uuid4(), customer, requests, products, uow.clock())
    uow.orders.add(order)
    return order


async def pay_order(command: commands.PayOrder, uow: UnitOfWork) -> Order:
    order = await _locked_order(uow, command.order_id)
    order.pay(command.expected_version)
    return order


async def ship_order(command: commands.ShipOrder, uow: UnitOfWork) -> Order:
    order = await _locked_order(uow, command.order_id)
    order.ship(command.expected_version)
    return order


async def cancel_order(command: commands.CancelOrder, uow: UnitOfWork) -> Order:
    order = await _locked_order(uow, command.order_id)
    # Order first, then its products in id order: the same order every command locks in.
    products = await uow.products.lock(line.product_id for line in order.lines)
    order.cancel(command.reason, command.expected_version, products)
    return order


async def _locked_product(uow: UnitOfWork, product_id: UUID | None) -> Product:
    found = await uow.products.lock([product_id]) if product_id is not None else {}
    if product_id is None or product_id not in found:
        raise reject(ErrorCode.NOT_FOUND, "no such product", "productId")
    return found[product_id]


async def _locked_order(uow: UnitOfWork, order_id: UUID | None) -> Order:
    order = await uow.orders.lock(order_id) if order_id is not None else None
    if order is None:
        raise reject(ErrorCode.NOT_FOUND, "no such order", "orderId")
    return order


class Handlers:
    """Which handler runs each type of command, one each."""

    def __init__(self) -> None:
        self._by_type: dict[type[Command], Handler[Command]] = {}

    def add(self, command_type: type[C], handler: Handler[C]) -> Handlers:
        """Let `handler` run commands of `command_type`; the type checker sees that it can."""

        async def run(command: Command, uow: UnitOfWork) -> Aggregate:
            assert isinstance(command, command_type)
            return await handler(command, uow)

        self._by_type[command_type] = run
        return self

    def __contains__(self, command_type: type[Command]) -> bool:
        return command_type in self._by_type

    async def handle(self, command: Command, uow: UnitOfWork) -> Aggregate:
        """Run the command's handler and return the aggregate the command concerned."""
        return await self._by_type[type(command)](command, uow)


HANDLERS = (
    Handlers()
    .add(commands.RegisterCustomer, register_customer)
    .add(commands.CreateProduct, create_product)
    .add(commands.ChangeProductPrice, change_product_price)
    .add(commands.RestockProduct, restock_product)
    .add(commands.PlaceOrder, place_order)
    .add(commands.PayOrder, pay_order)
    .add(commands.ShipOrder, ship_order)
    .add(commands.CancelOrder, cancel_order)
)
