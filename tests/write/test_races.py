"""Real concurrency against one server: no oversold stock, no lost update, no deadlock, no 500."""

from __future__ import annotations

import asyncio
import random

from app.runtime.bootstrap import Stores
from devtools import store_snapshot
from devtools.graphql_client import (
    CANCEL_ORDER,
    PAY_ORDER,
    PLACE_ORDER,
    REGISTER_CUSTOMER,
    GraphQLClient,
)


async def test_200_orders_for_the_last_50_units_sell_exactly_50(
    gql: GraphQLClient, stores: Stores
) -> None:
    customer = await gql.customer()
    product = await gql.product(stock=50)
    payloads = await asyncio.gather(
        *(
            gql.mutate(
                PLACE_ORDER, customerId=customer, lines=[{"productId": product, "quantity": 1}]
            )
            for _ in range(200)
        )
    )
    codes = [tuple(e["code"] for e in p["userErrors"]) for p in payloads]
    assert codes.count(()) == 50
    assert codes.count(("INSUFFICIENT_STOCK",)) == 150
    snapshot = await store_snapshot.write_store(stores.write_engine)
    assert snapshot["products"][0][4] == 0
    assert len(snapshot["orders"]) == 50
    placed = [e for e in snapshot["outbox"] if e[5] == "OrderPlaced"]
    assert len(placed) == 50


async def test_two_registrations_of_one_email_give_one_customer(
    gql: GraphQLClient, stores: Stores
) -> None:
    for attempt in range(15):
        email = f"twin{attempt}@example.com"
        payloads = await asyncio.gather(
            gql.mutate(REGISTER_CUSTOMER, email=email, name="One"),
            gql.mutate(REGISTER_CUSTOMER, email=email.upper(), name="Two"),
        )
        codes = sorted(tuple(e["code"] for e in p["userErrors"]) for p in payloads)
        assert codes == [(), ("ALREADY_EXISTS",)]
    snapshot = await store_snapshot.write_store(stores.write_engine)
    assert len(snapshot["customers"]) == len(snapshot["outbox"]) == 15


async def test_concurrent_pay_and_cancel_let_exactly_one_win(
    gql: GraphQLClient, stores: Stores
) -> None:
    customer = await gql.customer()
    product = await gql.product(stock=1000)
    for _ in range(15):
        order_id = (await gql.order(customer, (product, 2)))["orderId"]
        paid, cancelled = await asyncio.gather(
            gql.mutate(PAY_ORDER, orderId=order_id, expectedVersion=1),
            gql.mutate(CANCEL_ORDER, orderId=order_id, expectedVersion=1),
        )
        winners = [p for p in (paid, cancelled) if not p["userErrors"]]
        losers = [p for p in (paid, cancelled) if p["userErrors"]]
        assert len(winners) == len(losers) == 1
        assert winners[0]["version"] == 2
        assert losers[0]["userErrors"][0]["code"] in {"VERSION_CONFLICT", "INVALID_STATE"}
    events = await store_snapshot.outbox(stores.write_engine)
    versions = [e["aggregate_version"] for e in events if e["aggregate_type"] == "Order"]
    assert sorted(versions) == sorted([1, 2] * 15)


async def test_orders_locking_the_same_products_in_any_order_do_not_deadlock(
    gql: GraphQLClient, stores: Stores
) -> None:
    customer = await gql.customer()
    products = [await gql.product(sku=f"P{i}", stock=10_000) for i in range(4)]
    rng = random.Random(7)

    async def order_then_maybe_cancel() -> None:
        chosen = rng.sample(products, k=3)
        order = await gql.order(customer, *((p, 5) for p in chosen))
        if rng.random() < 0.5:
            await gql.ok(CANCEL_ORDER, orderId=order["orderId"])

    await asyncio.gather(*(order_then_maybe_cancel() for _ in range(80)))
    snapshot = await store_snapshot.write_store(stores.write_engine)
    live = {row[0] for row in snapshot["orders"] if row[2] != "CANCELLED"}
    sold: dict[object, int] = {}
    for line in snapshot["order_lines"]:
        if line[0] in live:
            sold[line[2]] = sold.get(line[2], 0) + line[6]
    for row in snapshot["products"]:
        assert row[4] == 10_000 - sold.get(row[0], 0)
