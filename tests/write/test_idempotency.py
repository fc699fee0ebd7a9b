"""commandId: a repeated command returns its first result and writes nothing more."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from app.runtime.bootstrap import Stores
from devtools import store_snapshot
from devtools.graphql_client import PLACE_ORDER, REGISTER_CUSTOMER, RESTOCK_PRODUCT, GraphQLClient


async def test_the_same_command_twice_gives_the_same_payload_and_one_write(
    gql: GraphQLClient, stores: Stores
) -> None:
    first = await gql.ok(REGISTER_CUSTOMER, commandId="c-1", email="a@example.com", name="A")
    after_first = await store_snapshot.write_store(stores.write_engine)
    again = await gql.ok(REGISTER_CUSTOMER, commandId="c-1", email="a@example.com", name="A")
    assert again == first
    assert await store_snapshot.write_store(stores.write_engine) == after_first
    assert len(after_first["customers"]) == len(after_first["outbox"]) == 1


async def test_the_same_command_id_with_another_input_is_refused(
    gql: GraphQLClient, stores: Stores
) -> None:
    await gql.ok(REGISTER_CUSTOMER, commandId="c-2", email="a@example.com", name="A")
    before = await store_snapshot.write_store(stores.write_engine)
    reused = await gql.mutate(REGISTER_CUSTOMER, commandId="c-2", email="b@example.com", name="B")
    assert [(e["code"], e["field"]) for e in reused["userErrors"]] == [
        ("COMMAND_ID_REUSED", ["commandId"])
    ]
    assert reused["customerId"] is None
    assert await store_snapshot.write_store(stores.write_engine) == before


async def test_a_command_id_reused_by_another_mutation_is_refused(gql: GraphQLClient) -> None:
    product = await gql.product()
    await gql.ok(RESTOCK_PRODUCT, commandId="c-3", productId=product, quantity=1)
    reused = await gql.mutate(REGISTER_CUSTOMER, commandId="c-3", email="z@example.com", name="Z")
    assert [e["code"] for e in reused["userErrors"]] == ["COMMAND_ID_REUSED"]


async def test_a_record_from_before_records_were_per_caller_answers_every_caller(
    gql: GraphQLClient, stores: Stores
) -> None:
    first = await gql.ok(REGISTER_CUSTOMER, commandId="c-4", email="a@example.com", name="A")
    async with stores.write_engine.begin() as connection:  # as migration w0004 left it
        await connection.execute(text("UPDATE idempotency SET caller = '*'"))
    again = await gql.ok(REGISTER_CUSTOMER, commandId="c-4", email="a@example.com", name="A")
    assert again == first
    reused = await gql.mutate(REGISTER_CUSTOMER, commandId="c-4", email="b@example.com", name="B")
    assert [e["code"] for e in reused["userErrors"]] == ["COMMAND_ID_REUSED"]


async def test_concurrent_duplicates_place_one_order(gql: GraphQLClient, stores: Stores) -> None:
    customer = await gql.customer()
    product = await gql.product(stock=100)
    lines = [{"productId": product, "quantity": 3}]
    payloads = await asyncio.gather(
        *(
            gql.ok(PLACE_ORDER, commandId="order-once", customerId=customer, lines=lines)
            for _ in range(20)
        )
    )
    assert len({p["orderId"] for p in payloads}) == 1
    snapshot = await store_snapshot.write_store(stores.write_engine)
    assert len(snapshot["orders"]) == 1
    assert snapshot["products"][0][4] == 97


async def test_a_refused_command_is_not_remembered_and_may_be_retried(gql: GraphQLClient) -> None:
    customer = await gql.customer()
    product = await gql.product(stock=1)
    lines = [{"productId": product, "quantity": 2}]
    refused = await gql.mutate(PLACE_ORDER, commandId="retry-me", customerId=customer, lines=lines)
    assert [e["code"] for e in refused["userErrors"]] == ["INSUFFICIENT_STOCK"]
    await gql.ok(RESTOCK_PRODUCT, productId=product, quantity=1)
    retried = await gql.ok(PLACE_ORDER, commandId="retry-me", customerId=customer, lines=lines)
    assert retried["version"] == 1
