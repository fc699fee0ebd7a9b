"""Each command handler's rule, run on an in-memory unit of work: no database.

The rules of the aggregates themselves are in test_domain.py and test_domain_order.py; here,
what the handlers add: loading (and not finding), uniqueness, and what ends up stored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar
from uuid import UUID, uuid4

import pytest

from app.events import CustomerRegistered
from app.write.commands import (
    CancelOrder,
    ChangeProductPrice,
    Command,
    CreateProduct,
    OrderLine,
    PayOrder,
    PlaceOrder,
    RegisterCustomer,
    RestockProduct,
    ShipOrder,
)
from app.write.domain import rules
from app.write.domain.aggregate import Aggregate
from app.write.domain.customer import Customer
from app.write.domain.errors import ErrorCode, Path, Rejected
from app.write.domain.order import Order, OrderStatus
from app.write.domain.product import Product
from app.write.handlers import (
    cancel_order,
    change_product_price,
    create_product,
    pay_order,
    place_order,
    register_customer,
    restock_product,
    ship_order,
)
from app.write.ports import UnitOfWork
from tests.write.memory_uow import NOW, MemoryStore

C = TypeVar("C", bound=Command)
A = TypeVar("A", bound=Aggregate)

UNKNOWN = UUID("7d0c1f0e-1d9e-4e59-9d07-6a1a5a0b0c0d")
NAMES_NOTHING = [UNKNOWN, None]  # an id of nothing stored; a client's string that is no UUID


async def run(
    store: MemoryStore, handler: Callable[[C, UnitOfWork], Awaitable[A]], command: C
) -> A:
    """Run one handler in a unit of work on the store and commit, as the executor does."""
    async with store.unit_of_work() as uow:
        aggregate = await handler(command, uow)
        await uow.commit()
    return aggregate


async def refusal(
    store: MemoryStore, handler: Callable[[C, UnitOfWork], Awaitable[Aggregate]], command: C
) -> list[tuple[ErrorCode, Path | None]]:
    """The code and field of each error the handler refused the command with."""
    with pytest.raises(Rejected) as info:
        await run(store, handler, command)
    return [(error.code, error.field) for error in info.value.errors]


def a_customer(store: MemoryStore, email: str = "ada@example.com") -> Customer:
    customer = Customer.register(uuid4(), email, "Ada Lovelace", NOW)
    store.seed(customer)
    return customer


def a_product(store: MemoryStore, stock: int = 5, sku: str = "SKU-1") -> Product:
    product = Product(uuid4(), 1, sku, f"Product {sku}", 100, stock, NOW)
    store.seed(product)
    return product


async def an_order(store: MemoryStore, *products: Product, quantity: int = 1) -> Order:
    customer = a_customer(store, f"{uuid4().hex}@example.com")
    lines = tuple(OrderLine(product_id=p.id, quantity=quantity) for p in products)
    return await run(store, place_order, PlaceOrder(customer_id=customer.id, lines=lines))


# register_customer, create_product


async def test_a_registered_customer_is_stored_with_its_event() -> None:
    store = MemoryStore()
    command = RegisterCustomer(email="ada@example.com", name="Ada")
    customer = await run(store, register_customer, command)
    assert store.customers[customer.id].email == "ada@example.com"
    assert [type(e.event) for e in store.events] == [CustomerRegistered]


async def test_registering_a_taken_email_in_another_case_is_already_exists_on_email() -> None:
    store = MemoryStore()
    a_customer(store, "ada@example.com")
    command = RegisterCustomer(email="ADA@example.com", name="Ada II")
    assert await refusal(store, register_customer, command) == [
        (ErrorCode.ALREADY_EXISTS, ("email",))
    ]


async def test_creating_a_taken_sku_is_already_exists_on_sku() -> None:
    store = MemoryStore()
    a_product(store, sku="SKU-1")
    command = CreateProduct(sku="SKU-1", name="Other", price_cents=1, stock=1)
    assert await refusal(store, create_product, command) == [(ErrorCode.ALREADY_EXISTS, ("sku",))]


# change_product_price, restock_product


async def test_a_price_change_is_stored_with_the_next_version() -> None:
    store = MemoryStore()
    product = a_product(store)
    command = ChangeProductPrice(product_id=product.id, price_cents=250, expected_version=1)
    await run(store, change_product_price, command)
    stored = store.products[product.id]
    assert (stored.price_cents, stored.version) == (250, 2)


@pytest.mark.parametrize("product_id", NAMES_NOTHING)
async def test_a_price_change_of_a_product_that_is_not_there_is_not_found_on_product_id(
    product_id: UUID | None,
) -> None:
    command = ChangeProductPrice(product_id=product_id, price_cents=1)
    assert await refusal(MemoryStore(), change_product_price, command) == [
        (ErrorCode.NOT_FOUND, ("productId",))
    ]


@pytest.mark.parametrize("product_id", NAMES_NOTHING)
async def test_restocking_a_product_that_is_not_there_is_not_found_on_product_id(
    product_id: UUID | None,
) -> None:
    command = RestockProduct(product_id=product_id, quantity=1)
    assert await refusal(MemoryStore(), restock_product, command) == [
        (ErrorCode.NOT_FOUND, ("productId",))
    ]


async def test_restocking_counts_units_held_by_open_orders_against_the_stock_cap() -> None:
    store = MemoryStore()
    product = a_product(store, stock=rules.MAX_STOCK - 10)
    await an_order(store, product, quantity=4)  # stock cap - 14, and 4 units may come back
    command = RestockProduct(product_id=product.id, quantity=11)
    assert await refusal(store, restock_product, command) == [(ErrorCode.VALIDATION, ("quantity",))]


# place_order


async def test_placing_an_order_reserves_stock_from_each_product() -> None:
    store = MemoryStore()
    first, second = a_product(store, stock=5, sku="A"), a_product(store, stock=3, sku="B")
    order = await an_order(store, first, second, quantity=2)
    assert store.orders[order.id].status is OrderStatus.PLACED
    assert (store.products[first.id].stock, store.products[second.id].stock) == (3, 1)


@pytest.mark.parametrize("product_id", NAMES_NOTHING)
async def test_an_order_line_for_a_product_that_is_not_there_is_not_found_at_its_index(
    product_id: UUID | None,
) -> None:
    store = MemoryStore()
    customer, product = a_customer(store), a_product(store)
    lines = (
        OrderLine(product_id=product.id, quantity=1),
        OrderLine(product_id=product_id, quantity=1),
    )
    command = PlaceOrder(customer_id=customer.id, lines=lines)
    assert await refusal(store, place_order, command) == [
        (ErrorCode.NOT_FOUND, ("lines", "1", "productId"))
    ]


@pytest.mark.parametrize("customer_id", NAMES_NOTHING)
async def test_an_order_for_a_customer_who_is_not_there_is_not_found_on_customer_id(
    customer_id: UUID | None,
) -> None:
    store = MemoryStore()
    product = a_product(store)
    command = PlaceOrder(
        customer_id=customer_id, lines=(OrderLine(product_id=product.id, quantity=1),)
    )
    assert await refusal(store, place_order, command) == [(ErrorCode.NOT_FOUND, ("customerId",))]


async def test_a_refused_order_leaves_the_stored_stock_as_it_was() -> None:
    store = MemoryStore()
    customer, product = a_customer(store), a_product(store, stock=1)
    command = PlaceOrder(
        customer_id=customer.id, lines=(OrderLine(product_id=product.id, quantity=2),)
    )
    await refusal(store, place_order, command)
    assert store.products[product.id].stock == 1
    assert store.orders == {}


# pay_order, ship_order, cancel_order


async def test_paying_a_placed_order_stores_it_as_paid() -> None:
    store = MemoryStore()
    order = await an_order(store, a_product(store))
    await run(store, pay_order, PayOrder(order_id=order.id))
    assert store.orders[order.id].status is OrderStatus.PAID


async def test_shipping_a_paid_order_stores_it_as_shipped() -> None:
    store = MemoryStore()
    order = await an_order(store, a_product(store))
    await run(store, pay_order, PayOrder(order_id=order.id))
    await run(store, ship_order, ShipOrder(order_id=order.id))
    assert store.orders[order.id].status is OrderStatus.SHIPPED


async def test_shipping_an_order_not_yet_paid_is_invalid_state_on_order_id() -> None:
    store = MemoryStore()
    order = await an_order(store, a_product(store))
    assert await refusal(store, ship_order, ShipOrder(order_id=order.id)) == [
        (ErrorCode.INVALID_STATE, ("orderId",))
    ]


async def test_cancelling_gives_each_lines_stock_back_to_its_product() -> None:
    store = MemoryStore()
    first, second = a_product(store, stock=5, sku="A"), a_product(store, stock=3, sku="B")
    order = await an_order(store, first, second, quantity=2)
    await run(store, cancel_order, CancelOrder(order_id=order.id, reason="changed my mind"))
    assert store.orders[order.id].status is OrderStatus.CANCELLED
    assert (store.products[first.id].stock, store.products[second.id].stock) == (5, 3)


@pytest.mark.parametrize("order_id", NAMES_NOTHING)
@pytest.mark.parametrize(
    "attempt",
    [
        lambda store, order_id: refusal(store, pay_order, PayOrder(order_id=order_id)),
        lambda store, order_id: refusal(store, ship_order, ShipOrder(order_id=order_id)),
        lambda store, order_id: refusal(store, cancel_order, CancelOrder(order_id=order_id)),
    ],
    ids=["pay", "ship", "cancel"],
)
async def test_an_order_that_is_not_there_is_not_found_on_order_id(
    attempt: Callable[[MemoryStore, UUID | None], Awaitable[list[tuple[ErrorCode, Path | None]]]],
    order_id: UUID | None,
) -> None:
    assert await attempt(MemoryStore(), order_id) == [(ErrorCode.NOT_FOUND, ("orderId",))]
