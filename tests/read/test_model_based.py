"""A seeded random run of thousands of commands over HTTP against an independent model of the
shop; once the projections have caught up, every query answers what the model predicts.

Commands run in concurrent batches. A batch is planned so that every command's outcome is
determined whatever order the server runs them in: at most one command per order and one
version-changing command per product, no orders on a product whose price changes in the
batch, orders accepted only if the stock before the batch covers all of the batch's orders,
and refused for stock only if no restock or cancellation in the batch could cover them.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import text

from app.events.consistency_token import AggregateVersion
from app.runtime.bootstrap import Api, Stores
from devtools.graphql_client import (
    CANCEL_ORDER,
    CHANGE_PRODUCT_PRICE,
    CREATE_PRODUCT,
    PAY_ORDER,
    PLACE_ORDER,
    REGISTER_CUSTOMER,
    RESTOCK_PRODUCT,
    SHIP_ORDER,
    GraphQLClient,
)
from tests.support.consistency_tokens import token_for, versions_of
from tests.support.pipeline_waits import caught_up
from tests.support.read_queries import (
    CUSTOMER_ORDERS,
    CUSTOMERS,
    ORDERS,
    PRODUCTS,
    PROJECTIONS,
    SALES_REPORT,
    page_through,
)

# Heavy load: run one after another with the other load tests (see pyproject addopts).
pytestmark = pytest.mark.xdist_group("load")

SEED = 20261122
COMMANDS = 2000
BATCH = 10
NAMES = ["ada", "Ada", "ALAN", "alan", "Grace", "grace hopper", "Linus", "zed", "Zoe", "bob"]
WORDS = ["Widget", "gadget", "Gizmo", "sprocket", "Doohickey", "thing", "Whatsit"]


@dataclass
class Product:
    id: str
    sku: str
    name: str
    price: int
    stock: int
    version: int = 1
    sold: int = 0
    revenue: int = 0


@dataclass
class Order:
    id: str
    customer: str
    lines: list[tuple[Product, int, int]]  # product, quantity, unit price as placed
    status: str = "PLACED"
    version: int = 1
    reason: str | None = None

    @property
    def total(self) -> int:
        return sum(quantity * price for _, quantity, price in self.lines)


@dataclass
class Shop:
    """The model: what the read side must show after the commands."""

    customers: dict[str, tuple[str, str]] = field(default_factory=dict)  # id: (email, name)
    products: dict[str, Product] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    skus: int = 0
    emails: int = 0


@dataclass
class Planned:
    document: str
    input: dict[str, Any]
    error: str | None = None  # the code it must be refused with, or None: accepted
    accept: Callable[[dict[str, Any]], None] = lambda payload: None


@dataclass
class Batch:
    """What commands planned so far in a batch hold, so the next one stays determined."""

    shop: Shop
    stock: dict[str, int] = field(default_factory=dict)  # stock left for accepted orders
    busy_products: set[str] = field(default_factory=set)  # version changed in this batch
    priced: set[str] = field(default_factory=set)  # price changed in this batch
    ordered: set[str] = field(default_factory=set)
    busy_orders: set[str] = field(default_factory=set)

    def left(self, product: Product) -> int:
        return self.stock.setdefault(product.id, product.stock)


def _register(rng: random.Random, batch: Batch) -> Planned:
    shop = batch.shop
    if shop.customers and rng.random() < 0.1:
        email = rng.choice(list(shop.customers.values()))[0]
        return Planned(REGISTER_CUSTOMER, {"email": email.upper(), "name": "X"}, "ALREADY_EXISTS")
    if rng.random() < 0.05:
        return Planned(REGISTER_CUSTOMER, {"email": "not an email", "name": "X"}, "VALIDATION")
    shop.emails += 1
    email, name = f"user{shop.emails}@example.com", rng.choice(NAMES)

    def accept(payload: dict[str, Any]) -> None:
        shop.customers[payload["customerId"]] = (email, name)

    return Planned(REGISTER_CUSTOMER, {"email": email, "name": f" {name} "}, None, accept)


def _create_product(rng: random.Random, batch: Batch) -> Planned:
    shop = batch.shop
    if shop.products and rng.random() < 0.1:
        sku = rng.choice(list(shop.products.values())).sku
        data = {"sku": sku, "name": "X", "priceCents": 1, "stock": 1}
        return Planned(CREATE_PRODUCT, data, "ALREADY_EXISTS")
    shop.skus += 1
    sku, name = f"SKU-{shop.skus}", f"{rng.choice(WORDS)} {rng.randrange(100)}"
    price, stock = rng.choice([0, 99, 250, 250, 1000, 4999]), rng.randrange(0, 60)
    if rng.random() < 0.05:
        return Planned(CREATE_PRODUCT, {"sku": sku, "name": name, "priceCents": -1, "stock": 1},
                       "VALIDATION")  # fmt: skip

    def accept(payload: dict[str, Any]) -> None:
        shop.products[payload["productId"]] = Product(payload["productId"], sku, name, price, stock)

    data = {"sku": sku, "name": name, "priceCents": price, "stock": stock}
    return Planned(CREATE_PRODUCT, data, None, accept)


def _free_product(rng: random.Random, batch: Batch) -> Product | None:
    free = [p for p in batch.shop.products.values() if p.id not in batch.busy_products]
    return rng.choice(free) if free else None


def _change_price(rng: random.Random, batch: Batch) -> Planned | None:
    product = _free_product(rng, batch)
    if product is None or product.id in batch.ordered:
        return None
    batch.busy_products.add(product.id)
    batch.priced.add(product.id)
    price = rng.choice([50, 250, 300, 999, 12345])
    if rng.random() < 0.15:
        data = {
            "productId": product.id,
            "priceCents": price,
            "expectedVersion": product.version + 1,
        }
        return Planned(CHANGE_PRODUCT_PRICE, data, "VERSION_CONFLICT")

    def accept(payload: dict[str, Any]) -> None:
        product.price, product.version = price, product.version + 1

    data = {"productId": product.id, "priceCents": price, "expectedVersion": product.version}
    return Planned(CHANGE_PRODUCT_PRICE, data, None, accept)


def _restock(rng: random.Random, batch: Batch) -> Planned | None:
    product = _free_product(rng, batch)
    if product is None:
        return None
    batch.busy_products.add(product.id)
    quantity = 0 if rng.random() < 0.1 else rng.randrange(1, 40)
    if quantity == 0:
        return Planned(RESTOCK_PRODUCT, {"productId": product.id, "quantity": 0}, "VALIDATION")

    def accept(payload: dict[str, Any]) -> None:
        product.stock, product.version = product.stock + quantity, product.version + 1

    return Planned(RESTOCK_PRODUCT, {"productId": product.id, "quantity": quantity}, None, accept)


def _place_order(rng: random.Random, batch: Batch) -> Planned | None:
    shop = batch.shop
    orderable = [p for p in shop.products.values() if p.id not in batch.priced]
    if not shop.customers or not orderable:
        return None
    customer = rng.choice(list(shop.customers))
    roll = rng.random()
    if roll < 0.04:
        return _order_input(str(uuid4()), [(orderable[0].id, 1)], "NOT_FOUND")
    if roll < 0.08:
        return _order_input(customer, [(orderable[0].id, 1), (str(uuid4()), 1)], "NOT_FOUND")
    if roll < 0.11:
        return _order_input(customer, [(orderable[0].id, 0)], "VALIDATION")
    if roll < 0.16:
        # More than the stock plus anything this batch could add: refused whatever the order.
        product = rng.choice(orderable)
        return _order_input(customer, [(product.id, product.stock + 1000)], "INSUFFICIENT_STOCK")
    in_stock = [p for p in orderable if batch.left(p) > 0]
    chosen = rng.sample(in_stock, min(len(in_stock), rng.randint(1, 3)))
    if not chosen:
        return None
    lines = [(p, rng.randint(1, min(5, batch.left(p))), p.price) for p in chosen]
    for product, quantity, _ in lines:
        batch.stock[product.id] -= quantity
        batch.ordered.add(product.id)

    def accept(payload: dict[str, Any]) -> None:
        shop.orders[payload["orderId"]] = Order(payload["orderId"], customer, lines)
        for product, quantity, price in lines:
            product.stock -= quantity
            product.sold += quantity
            product.revenue += quantity * price

    return _order_input(customer, [(p.id, q) for p, q, _ in lines], None, accept)


def _order_input(
    customer: str,
    lines: list[tuple[str, int]],
    error: str | None,
    accept: Callable[[dict[str, Any]], None] = lambda payload: None,
) -> Planned:
    data = {"customerId": customer, "lines": [{"productId": p, "quantity": q} for p, q in lines]}
    return Planned(PLACE_ORDER, data, error, accept)


_MOVES = {
    PAY_ORDER: ("PAID", {"PLACED"}),
    SHIP_ORDER: ("SHIPPED", {"PAID"}),
    CANCEL_ORDER: ("CANCELLED", {"PLACED", "PAID"}),
}


def _move(rng: random.Random, batch: Batch, document: str) -> Planned | None:
    target, sources = _MOVES[document]
    free = [o for o in batch.shop.orders.values() if o.id not in batch.busy_orders]
    allowed = [o for o in free if o.status in sources]
    pool = allowed if allowed and rng.random() < 0.85 else free
    if not pool:
        return None
    order = rng.choice(pool)
    batch.busy_orders.add(order.id)
    data: dict[str, Any] = {"orderId": order.id}
    if rng.random() < 0.08:
        data["expectedVersion"] = order.version - 1
        return Planned(document, data, "VERSION_CONFLICT")
    if order.status not in sources:
        return Planned(document, data, "INVALID_STATE")
    reason = rng.choice([None, "changed my mind", "too slow"]) if target == "CANCELLED" else None
    if reason:
        data["reason"] = reason

    def accept(payload: dict[str, Any]) -> None:
        order.status, order.version, order.reason = target, order.version + 1, reason
        if target == "CANCELLED":
            for product, quantity, price in order.lines:
                product.stock += quantity
                product.sold -= quantity
                product.revenue -= quantity * price

    return Planned(document, data, None, accept)


_KINDS: list[tuple[float, Callable[[random.Random, Batch], Planned | None]]] = [
    (0.08, _register),
    (0.07, _create_product),
    (0.06, _change_price),
    (0.06, _restock),
    (0.38, _place_order),
    (0.15, lambda rng, batch: _move(rng, batch, PAY_ORDER)),
    (0.10, lambda rng, batch: _move(rng, batch, SHIP_ORDER)),
    (0.10, lambda rng, batch: _move(rng, batch, CANCEL_ORDER)),
]


def plan_batch(rng: random.Random, shop: Shop, size: int) -> list[Planned]:
    """`size` commands whose outcomes do not depend on the order they run in."""
    batch, planned = Batch(shop), []
    while len(planned) < size:
        if len(shop.customers) < 5 or len(shop.products) < 5:
            make = _register if len(shop.customers) < 5 else _create_product
        else:
            make = rng.choices([k for _, k in _KINDS], [w for w, _ in _KINDS])[0]
        command = make(rng, batch)
        if command is not None:
            planned.append(command)
    return planned


async def run_commands(gql: GraphQLClient, rng: random.Random, shop: Shop) -> list[str]:
    """Run the commands batch by batch, checking each outcome; the tokens of those accepted."""
    tokens = []
    for _ in range(COMMANDS // BATCH):
        planned = plan_batch(rng, shop, BATCH)
        payloads = await asyncio.gather(*(gql.mutate(p.document, **p.input) for p in planned))
        for command, payload in zip(planned, payloads, strict=True):
            codes = [error["code"] for error in payload["userErrors"]]
            if command.error is None:
                assert codes == [], (command, payload)
                command.accept(payload)
                tokens.append(payload["consistencyToken"])
            else:
                assert command.error in codes, (command, payload)
    return tokens


@dataclass
class Times:
    """What the model cannot know in advance: the moments the write store recorded."""

    placed: dict[str, datetime]
    registered: dict[str, datetime]


async def recorded_times(stores: Stores) -> Times:
    async with stores.write_engine.connect() as connection:
        placed = await connection.execute(text("SELECT id, placed_at FROM orders"))
        registered = await connection.execute(text("SELECT id, registered_at FROM customers"))
        return Times({str(i): t for i, t in placed}, {str(i): t for i, t in registered})


async def wait_for_projections(gql: GraphQLClient, process: Api, tokens: list[str]) -> None:
    """Every accepted command's events applied, then no lag left anywhere."""
    latest: dict[UUID, AggregateVersion] = {}
    for version in (v for token in tokens for v in versions_of(process, token)):
        seen = latest.get(version.aggregate_id)
        if seen is None or version.version >= seen.version:
            latest[version.aggregate_id] = version
    versions = list(latest.values())
    for start in range(0, len(versions), 50):  # a token holds a bounded number of aggregates
        token = token_for(process, versions[start : start + 50])
        await caught_up(process, token, timeout_s=60)
    for _ in range(200):
        statuses = (await gql.data(PROJECTIONS))["projections"]
        if all(s["lagEvents"] == 0 and s["deadLetters"] == 0 for s in statuses):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"projections still lag: {statuses}")


def expected_order(shop: Shop, order: Order, times: Times) -> dict[str, Any]:
    email, name = shop.customers[order.customer]
    return {
        "id": order.id, "status": order.status,
        "customer": {"id": order.customer, "name": name, "email": email},
        "lines": [
            {"productId": p.id, "sku": p.sku, "productName": p.name, "quantity": q,
             "unitPriceCents": price, "lineTotalCents": q * price}
            for p, q, price in order.lines
        ],
        "itemCount": sum(q for _, q, _ in order.lines), "totalCents": order.total,
        "placedAt": times.placed[order.id], "cancelReason": order.reason, "version": order.version,
    }  # fmt: skip


def shown_order(node: dict[str, Any]) -> dict[str, Any]:
    shown = dict(node)
    shown["placedAt"] = datetime.fromisoformat(node["placedAt"])
    assert datetime.fromisoformat(shown.pop("updatedAt")) >= shown["placedAt"]
    return shown


def newest_first(orders: list[Order], times: Times) -> list[Order]:
    return sorted(orders, key=lambda o: (times.placed[o.id], UUID(o.id)), reverse=True)


async def check_orders(gql: GraphQLClient, shop: Shop, times: Times, rng: random.Random) -> None:
    everything = newest_first(list(shop.orders.values()), times)
    middle = times.placed[everything[len(everything) // 2].id]
    some = rng.sample(list(shop.customers), 3)
    filters: list[tuple[dict[str, Any], Callable[[Order], bool]]] = [
        ({}, lambda o: True),
        *(({"status": [s]}, lambda o, s=s: o.status == s)
          for s in ("PLACED", "PAID", "SHIPPED", "CANCELLED")),  # type: ignore[misc]
        ({"status": ["PAID", "SHIPPED"]}, lambda o: o.status in ("PAID", "SHIPPED")),
        *(({"customerId": c}, lambda o, c=c: o.customer == c) for c in some),  # type: ignore[misc]
        ({"minTotalCents": 1000}, lambda o: o.total >= 1000),
        ({"placedFrom": middle.isoformat()}, lambda o: times.placed[o.id] >= middle),
        ({"placedTo": middle.isoformat()}, lambda o: times.placed[o.id] < middle),
    ]  # fmt: skip
    for given, keep in filters:
        nodes = await page_through(gql, ORDERS, 100, filter=given)
        expected = [expected_order(shop, o, times) for o in everything if keep(o)]
        assert [shown_order(n) for n in nodes] == expected, given
    for customer in some:
        nodes = await page_through(gql, CUSTOMER_ORDERS, 7, id=customer)
        mine = [o for o in everything if o.customer == customer]
        assert [shown_order(n) for n in nodes] == [expected_order(shop, o, times) for o in mine]


def expected_customers(shop: Shop, times: Times) -> list[dict[str, Any]]:
    placed: dict[str, list[Order]] = defaultdict(list)
    for order in shop.orders.values():
        placed[order.customer].append(order)
    rows = []
    for customer, (email, name) in shop.customers.items():
        kept = [o for o in placed[customer] if o.status != "CANCELLED"]
        last = max((times.placed[o.id] for o in placed[customer]), default=None)
        rows.append({
            "id": customer, "email": email, "name": name,
            "registeredAt": times.registered[customer], "orderCount": len(kept),
            "totalSpentCents": sum(o.total for o in kept), "lastOrderAt": last, "version": 1,
        })  # fmt: skip
    return rows


def shown_customer(node: dict[str, Any]) -> dict[str, Any]:
    last = node["lastOrderAt"]
    return {
        **node,
        "registeredAt": datetime.fromisoformat(node["registeredAt"]),
        "lastOrderAt": None if last is None else datetime.fromisoformat(last),
    }


CUSTOMER_SORTS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "NEWEST": lambda c: (-c["registeredAt"].timestamp(), -UUID(c["id"]).int),
    "TOTAL_SPENT_DESC": lambda c: (-c["totalSpentCents"], -UUID(c["id"]).int),
    "NAME": lambda c: (c["name"].lower().encode(), UUID(c["id"])),
}


async def check_customers(gql: GraphQLClient, shop: Shop, times: Times) -> None:
    rows = expected_customers(shop, times)
    for order_by, key in CUSTOMER_SORTS.items():
        nodes = await page_through(gql, CUSTOMERS, 100, orderBy=order_by)
        assert [shown_customer(n) for n in nodes] == sorted(rows, key=key), order_by


PRODUCT_SORTS: dict[str, Callable[[Product], Any]] = {
    "NAME": lambda p: (p.name.lower().encode(), UUID(p.id)),
    "PRICE_ASC": lambda p: (p.price, UUID(p.id)),
    "PRICE_DESC": lambda p: (-p.price, -UUID(p.id).int),
    "UNITS_SOLD_DESC": lambda p: (-p.sold, UUID(p.id)),
}


def product_node(p: Product) -> dict[str, Any]:
    return {
        "id": p.id, "sku": p.sku, "name": p.name, "priceCents": p.price, "stock": p.stock,
        "unitsSold": p.sold, "revenueCents": p.revenue, "version": p.version,
    }  # fmt: skip


async def check_products(gql: GraphQLClient, shop: Shop) -> None:
    filters: list[tuple[dict[str, Any], Callable[[Product], bool]]] = [
        ({}, lambda p: True),
        ({"inStock": True}, lambda p: p.stock > 0),
        ({"inStock": False}, lambda p: p.stock <= 0),
        ({"search": "GAD"}, lambda p: "gad" in f"{p.name} {p.sku}".lower()),
        ({"search": "sku-1"}, lambda p: "sku-1" in f"{p.name} {p.sku}".lower()),
    ]
    for order_by, key in PRODUCT_SORTS.items():
        for given, keep in filters:
            nodes = await page_through(gql, PRODUCTS, 100, orderBy=order_by, filter=given)
            expected = sorted((p for p in shop.products.values() if keep(p)), key=key)
            assert nodes == [product_node(p) for p in expected], (order_by, given)


async def check_sales(gql: GraphQLClient, shop: Shop, times: Times) -> None:
    days: dict[date, list[Order]] = defaultdict(list)
    for order in shop.orders.values():
        days[times.placed[order.id].astimezone(UTC).date()].append(order)
    start, end = min(days) - timedelta(days=1), max(days) + timedelta(days=1)
    report = (await gql.data(SALES_REPORT, {"from": start.isoformat(), "to": end.isoformat()}))[
        "salesReport"
    ]
    expected = []
    for n in range((end - start).days + 1):
        day = start + timedelta(days=n)
        kept = [o for o in days[day] if o.status != "CANCELLED"]
        expected.append({
            "date": day.isoformat(), "ordersPlaced": len(days[day]),
            "ordersCancelled": len(days[day]) - len(kept),
            "itemsSold": sum(q for o in kept for _, q, _ in o.lines),
            "revenueCents": sum(o.total for o in kept),
        })  # fmt: skip
    assert report == expected


async def test_every_query_answers_what_the_model_predicts(
    gql: GraphQLClient, process: Api
) -> None:
    rng, shop = random.Random(SEED), Shop()
    tokens = await run_commands(gql, rng, shop)
    await wait_for_projections(gql, process, tokens)
    times = await recorded_times(process.stores)
    assert len(shop.orders) > 300
    assert {o.status for o in shop.orders.values()} == {"PLACED", "PAID", "SHIPPED", "CANCELLED"}
    await check_orders(gql, shop, times, rng)
    await check_customers(gql, shop, times)
    await check_products(gql, shop)
    await check_sales(gql, shop, times)
