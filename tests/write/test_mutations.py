"""Every mutation over HTTP: the success path, its rows, and the events it logs."""

from __future__ import annotations

from uuid import UUID

from app.events.consistency_token import AggregateVersion
from app.runtime.bootstrap import Api, Stores
from devtools import store_snapshot
from devtools.graphql_client import (
    CANCEL_ORDER,
    CHANGE_PRODUCT_PRICE,
    CREATE_PRODUCT,
    PAY_ORDER,
    REGISTER_CUSTOMER,
    RESTOCK_PRODUCT,
    SHIP_ORDER,
    GraphQLClient,
)
from tests.support.consistency_tokens import versions_of


async def test_register_customer_stores_a_lower_cased_email(
    gql: GraphQLClient, stores: Stores
) -> None:
    payload = await gql.ok(REGISTER_CUSTOMER, email="  Ada@Example.COM ", name="  Ada Lovelace ")
    assert payload["version"] == 1
    snapshot = await store_snapshot.write_store(stores.write_engine)
    (row,) = snapshot["customers"]
    assert row[:4] == (UUID(payload["customerId"]), "ada@example.com", "Ada Lovelace", 1)
    (event,) = await store_snapshot.outbox(stores.write_engine)
    assert event["event_type"] == "CustomerRegistered"
    assert event["payload"]["email"] == "ada@example.com"


async def test_create_product_reports_version_one_and_logs_the_event(
    gql: GraphQLClient, stores: Stores
) -> None:
    payload = await gql.ok(CREATE_PRODUCT, sku="MUG-1", name="Mug", priceCents=1200, stock=5)
    assert payload["version"] == 1
    (event,) = await store_snapshot.outbox(stores.write_engine)
    assert (event["event_type"], event["aggregate_version"]) == ("ProductCreated", 1)
    assert event["payload"]["price_cents"] == 1200
    assert event["payload"]["stock"] == 5


async def test_price_changes_and_restocks_bump_the_product_version(
    gql: GraphQLClient, stores: Stores
) -> None:
    product = await gql.product(price_cents=100, stock=1)
    changed = await gql.ok(
        CHANGE_PRODUCT_PRICE, productId=product, priceCents=150, expectedVersion=1
    )
    restocked = await gql.ok(RESTOCK_PRODUCT, productId=product, quantity=9)
    assert (changed["version"], restocked["version"]) == (2, 3)
    events = await store_snapshot.outbox(stores.write_engine)
    assert [e["event_type"] for e in events] == [
        "ProductCreated",
        "ProductPriceChanged",
        "ProductRestocked",
    ]
    assert events[1]["payload"]["previous_price_cents"] == 100
    assert events[2]["payload"]["stock"] == 10
    rows = (await store_snapshot.write_store(stores.write_engine))["products"]
    assert rows[0][3:6] == (150, 10, 3)  # price, stock, version


async def test_place_order_reserves_stock_and_snapshots_the_lines(
    gql: GraphQLClient, stores: Stores
) -> None:
    customer = await gql.customer(email="bo@example.com", name="Bo")
    mug = await gql.product(sku="MUG", name="Mug", price_cents=1200, stock=5)
    pen = await gql.product(sku="PEN", name="Pen", price_cents=150, stock=100)
    order = await gql.order(customer, (pen, 10), (mug, 2))
    assert order["version"] == 1

    snapshot = await store_snapshot.write_store(stores.write_engine)
    stock = {row[1]: row[4] for row in snapshot["products"]}
    assert stock == {"MUG": 3, "PEN": 90}
    placed = (await store_snapshot.outbox(stores.write_engine))[-1]
    assert placed["event_type"] == "OrderPlaced"
    body = placed["payload"]
    assert (body["customer_name"], body["customer_email"]) == ("Bo", "bo@example.com")
    lines = [
        (line["sku"], line["product_name"], line["unit_price_cents"], line["quantity"])
        for line in body["lines"]
    ]
    assert lines == [("PEN", "Pen", 150, 10), ("MUG", "Mug", 1200, 2)]
    assert [line["line_total_cents"] for line in body["lines"]] == [150 * 10, 1200 * 2]
    assert (body["item_count"], body["total_cents"]) == (12, 150 * 10 + 1200 * 2)


async def test_an_order_goes_placed_paid_shipped(gql: GraphQLClient, stores: Stores) -> None:
    customer = await gql.customer()
    product = await gql.product()
    order_id = (await gql.order(customer, (product, 1)))["orderId"]
    paid = await gql.ok(PAY_ORDER, orderId=order_id, expectedVersion=1)
    shipped = await gql.ok(SHIP_ORDER, orderId=order_id)
    assert (paid["version"], shipped["version"]) == (2, 3)
    snapshot = await store_snapshot.write_store(stores.write_engine)
    assert snapshot["orders"][0][2:5] == ("SHIPPED", None, 3)  # status, reason, version
    order_events = [
        e["event_type"]
        for e in await store_snapshot.outbox(stores.write_engine)
        if e["aggregate_type"] == "Order"
    ]
    assert order_events == ["OrderPlaced", "OrderPaid", "OrderShipped"]


async def test_cancelling_releases_the_reserved_stock(gql: GraphQLClient, stores: Stores) -> None:
    customer = await gql.customer()
    product = await gql.product(stock=4)
    order_id = (await gql.order(customer, (product, 3)))["orderId"]
    await gql.ok(PAY_ORDER, orderId=order_id)
    cancelled = await gql.ok(CANCEL_ORDER, orderId=order_id, reason="  changed my mind ")
    assert cancelled["version"] == 3
    snapshot = await store_snapshot.write_store(stores.write_engine)
    assert snapshot["products"][0][4] == 4
    assert snapshot["orders"][0][2:4] == ("CANCELLED", "changed my mind")
    event = (await store_snapshot.outbox(stores.write_engine))[-1]
    assert event["event_type"] == "OrderCancelled"
    assert event["payload"]["previous_status"] == "PAID"
    assert event["payload"]["total_cents"] == 3 * 250


async def test_the_token_names_the_aggregate_versions_produced(
    gql: GraphQLClient, process: Api
) -> None:
    customer = await gql.customer()
    product = await gql.product()
    order = await gql.order(customer, (product, 1))
    paid = await gql.ok(PAY_ORDER, orderId=order["orderId"])
    order_id = UUID(order["orderId"])
    assert versions_of(process, order["consistencyToken"]) == (
        AggregateVersion("Order", order_id, 1, ("OrderPlaced",)),
    )
    assert versions_of(process, paid["consistencyToken"]) == (
        AggregateVersion("Order", order_id, 2, ("OrderPaid",)),
    )


async def test_the_outbox_holds_each_aggregates_events_in_version_order(
    gql: GraphQLClient, stores: Stores
) -> None:
    customer = await gql.customer()
    product = await gql.product(stock=50)
    for _ in range(3):
        order_id = (await gql.order(customer, (product, 2)))["orderId"]
        await gql.ok(PAY_ORDER, orderId=order_id)
        await gql.ok(CANCEL_ORDER, orderId=order_id)
        await gql.ok(RESTOCK_PRODUCT, productId=product, quantity=1)
    events = await store_snapshot.outbox(stores.write_engine)
    by_aggregate: dict[UUID, list[int]] = {}
    for event in events:
        by_aggregate.setdefault(event["aggregate_id"], []).append(event["aggregate_version"])
    assert all(versions == list(range(1, len(versions) + 1)) for versions in by_aggregate.values())
    assert len(events) == 1 + 1 + 3 * 3 + 3
