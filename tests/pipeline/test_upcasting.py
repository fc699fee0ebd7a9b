"""Events written by an older release are read in today's shape, everywhere events are read:
the live projectors, a rebuild, a dead letter retried. OrderPlaced and OrderCancelled v2 carry
each line's total; their v1 events, still in the log, are upcast with price times quantity.
An event newer than the code is parked with its reason, never skipped."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.events import (
    EVENT_TYPES,
    OrderCancelled,
    OrderPaid,
    OrderPlaced,
    PlacedLine,
    UnknownEventError,
    decode_json,
    encode,
)
from app.events.serialization import from_stream_fields, stream_fields
from app.events.streams import stream_key
from app.pipeline.dead_letters import list_dead_letters, retry
from app.pipeline.rebuild import rebuild
from app.projections.registry import PROJECTIONS
from app.runtime.bootstrap import Api, Stores
from devtools.graphql_client import GraphQLClient
from devtools.read_model_check import read_models
from tests.support.pipeline_waits import caught_up, until_projected


def v1_payload(event: OrderPlaced | OrderCancelled) -> dict[str, Any]:
    """The payload as the release before v2 wrote it: lines without their totals."""
    payload = encode(event)
    payload["lines"] = [
        {k: v for k, v in line.items() if k != "line_total_cents"} for line in payload["lines"]
    ]
    return payload


def placed(lines: tuple[PlacedLine, ...], customer: uuid.UUID | None = None) -> OrderPlaced:
    at = datetime(2026, 11, 30, 12, tzinfo=UTC)
    return OrderPlaced(
        uuid.uuid4(), customer or uuid.uuid4(), "Old Timer", "old@example.com", lines,
        sum(line.quantity for line in lines), sum(line.line_total_cents for line in lines), at,
    )  # fmt: skip


def test_every_event_type_declares_a_step_to_each_of_its_versions() -> None:
    for event_type in EVENT_TYPES:
        assert len(event_type.upcasts) == event_type.schema_version - 1, event_type
    assert (OrderPlaced.schema_version, OrderCancelled.schema_version) == (2, 2)


def test_a_v1_order_is_read_with_its_line_totals_and_a_current_one_as_it_came() -> None:
    event = placed((PlacedLine.priced(uuid.uuid4(), "PEN", "Pen", 150, 4),))
    old = json.dumps(v1_payload(event))
    assert decode_json("OrderPlaced", 1, old) == event
    fields = stream_fields(
        uuid.uuid4(), "OrderPlaced", 1, "Order", event.order_id, 1, event.placed_at, 7, old
    )
    streamed = from_stream_fields(fields)
    assert streamed.schema_version == 2
    assert json.loads(streamed.payload_json)["lines"][0]["line_total_cents"] == 600
    assert streamed.event == event
    current = json.dumps(encode(event))
    fields = {**fields, "schema": "2", "payload": current}
    assert from_stream_fields(fields).payload_json is current  # nothing parsed on the hot path


@pytest.mark.parametrize("version", [3, 0])
def test_a_version_newer_than_the_code_or_below_one_is_refused(version: int) -> None:
    event = placed((PlacedLine.priced(uuid.uuid4(), "PEN", "Pen", 150, 4),))
    fields = stream_fields(
        uuid.uuid4(), "OrderPlaced", version, "Order", event.order_id, 1, event.placed_at, 7,
        encode(event),
    )  # fmt: skip
    with pytest.raises(UnknownEventError, match=f"schema version {version}"):
        from_stream_fields(fields)
    if version == 3:
        with pytest.raises(UnknownEventError, match="newer than this code"):
            decode_json("OrderPlaced", version, json.dumps(encode(event)))


async def insert_old(write: AsyncEngine, event: OrderPlaced | OrderCancelled, version: int) -> None:
    """Put a v1 event in the log, as the release before wrote it."""
    async with write.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, "
                "event_type, schema_version, payload, occurred_at) VALUES (gen_random_uuid(), "
                "'Order', :order, :version, :type, 1, CAST(:payload AS jsonb), :at)"
            ),
            {"order": event.order_id, "version": version, "type": type(event).__name__,
             "payload": json.dumps(v1_payload(event)), "at": event.placed_at},
        )  # fmt: skip
        await connection.execute(text("SELECT pg_notify('shop_outbox', '')"))


async def test_a_log_of_both_versions_projects_the_same_live_and_rebuilt(
    gql: GraphQLClient, stores: Stores
) -> None:
    customer = await gql.customer()
    pen = await gql.product(sku="PEN", price_cents=150, stock=100)
    mug = await gql.product(sku="MUG", price_cents=1200, stock=100)
    await gql.order(customer, (pen, 2), (mug, 1))  # v2, written by this code
    customer_id, pen_id, mug_id = (uuid.UUID(i) for i in (customer, pen, mug))
    kept = placed(
        (PlacedLine.priced(pen_id, "PEN", "Pen", 150, 4),
         PlacedLine.priced(mug_id, "MUG", "Mug", 1200, 1)),
        customer_id,
    )  # fmt: skip
    cancelled = placed((PlacedLine.priced(mug_id, "MUG", "Mug", 1200, 3),), customer_id)
    await insert_old(stores.write_engine, kept, 1)
    await insert_old(stores.write_engine, cancelled, 1)
    await insert_old(
        stores.write_engine,
        OrderCancelled(
            cancelled.order_id, customer_id, "changed my mind", "PLACED", cancelled.lines,
            cancelled.item_count, cancelled.total_cents, cancelled.placed_at,
        ),
        2,
    )  # fmt: skip
    log_before = await event_log(stores.write_engine)
    await until_projected(stores)

    live = await read_models(stores.read_engine)
    assert await line_totals(stores.read_engine, kept.order_id) == [("PEN", 600), ("MUG", 1200)]
    async with stores.read_engine.connect() as connection:
        status = await connection.scalar(
            text("SELECT status FROM order_view WHERE id = :id"), {"id": cancelled.order_id}
        )
    assert status == "CANCELLED"
    revenue = await product_revenue(stores.read_engine)
    # The v2 order and the kept v1 order; the cancelled one's lines came and went.
    assert revenue == {"PEN": 150 * 2 + 600, "MUG": 1200 + 1200}

    reports = await rebuild(PROJECTIONS, stores.read_engine, stores.write_engine, lambda *_: None)
    assert {r.replayed for r in reports} != {0}
    assert await read_models(stores.read_engine) == live
    # The log itself is as it was written: its v1 events are upcast where read, not stored.
    assert await event_log(stores.write_engine) == log_before
    orders = sorted((row[1], row[2]) for row in log_before if row[0] == "Order")
    assert orders == [("OrderCancelled", 1), ("OrderPlaced", 1), ("OrderPlaced", 1),
                      ("OrderPlaced", 2)]  # fmt: skip


async def event_log(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT aggregate_type, event_type, schema_version, payload FROM outbox "
                 "ORDER BY position")
        )  # fmt: skip
        return [tuple(row) for row in rows]


async def line_totals(engine: AsyncEngine, order_id: uuid.UUID) -> list[tuple[str, int]]:
    async with engine.connect() as connection:
        lines = await connection.scalar(
            text("SELECT lines FROM order_view WHERE id = :id"), {"id": order_id}
        )
    return [(line["sku"], line["lineTotalCents"]) for line in lines]


async def product_revenue(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT sku, revenue_cents FROM product_catalogue"))
        return {sku: revenue for sku, revenue in rows.all()}


async def test_a_newer_event_is_parked_until_the_code_reads_it_then_retried_upcast(
    gql: GraphQLClient, process: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A v3 OrderPlaced (a release ahead, say during a rolling upgrade) waits in the dead
    letters with its reason, and the order's next event waits behind it; once the code reads
    v3, a retry applies both."""
    stores = process.stores
    customer = await gql.customer()
    pen = await gql.product(sku="PEN", price_cents=150, stock=100)
    ahead = placed((PlacedLine.priced(uuid.UUID(pen), "PEN", "Pen", 150, 5),), uuid.UUID(customer))
    fields: dict[Any, Any] = stream_fields(
        uuid.uuid4(), "OrderPlaced", 3, "Order", ahead.order_id, 1, ahead.placed_at, 1,
        {**encode(ahead), "gift_wrap": True},
    )  # fmt: skip
    paid: dict[Any, Any] = stream_fields(
        uuid.uuid4(), "OrderPaid", OrderPaid.schema_version, "Order", ahead.order_id, 2,
        ahead.placed_at, 2, encode(OrderPaid(ahead.order_id, ahead.customer_id)),
    )  # fmt: skip
    stream = stream_key(stores.settings.redis_prefix, 0)
    await stores.redis.xadd(stream, fields)
    await stores.redis.xadd(stream, paid)  # the order's next event: parked behind, no stall
    later = await gql.order(customer, (pen, 1))
    await caught_up(process, later["consistencyToken"])

    parked = await until_parked(stores.read_engine, 2 * len(PROJECTIONS))
    assert sorted((p.event_type, p.aggregate_version) for p in parked) == sorted(
        [("OrderPlaced", 1), ("OrderPaid", 2)] * len(PROJECTIONS)
    )
    reasons = {p.event_type: p.error for p in parked}
    assert "schema version 3 is newer than this code" in reasons["OrderPlaced"], reasons
    assert "behind an earlier parked event" in reasons["OrderPaid"], reasons
    async with stores.read_engine.connect() as connection:
        found = await connection.scalar(
            text("SELECT count(*) FROM order_view WHERE id = :id"), {"id": ahead.order_id}
        )
    assert found == 0

    # The upgrade: this code now reads v3 (v3 added gift_wrap, which nothing here reads).
    monkeypatch.setattr(OrderPlaced, "schema_version", 3)
    monkeypatch.setattr(OrderPlaced, "upcasts", (*OrderPlaced.upcasts, _gift_wrap_off))
    outcomes = await retry(stores.read_engine, PROJECTIONS)
    assert [o.error for o in outcomes] == [None] * len(PROJECTIONS), outcomes
    assert await list_dead_letters(stores.read_engine) == []
    assert await line_totals(stores.read_engine, ahead.order_id) == [("PEN", 750)]
    async with stores.read_engine.connect() as connection:
        status = await connection.scalar(
            text("SELECT status FROM order_view WHERE id = :id"), {"id": ahead.order_id}
        )
    assert status == "PAID"


def _gift_wrap_off(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "gift_wrap": False}


async def until_parked(engine: AsyncEngine, count: int) -> list[Any]:
    import asyncio

    for _ in range(300):
        letters = await list_dead_letters(engine)
        if len(letters) >= count:
            return letters
        await asyncio.sleep(0.1)
    raise AssertionError(f"parked: {await list_dead_letters(engine)}")


def test_lines_keep_their_fields_when_priced() -> None:
    line = PlacedLine.priced(uuid.uuid4(), "PEN", "Pen", 150, 4)
    assert dataclasses.astuple(line)[1:] == ("PEN", "Pen", 150, 4, 600)
