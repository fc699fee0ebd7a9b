"""A projection added to a running shop builds itself from the event log on first start: it
reports CATCHING_UP, no consumer takes its partitions until its build is swapped in, and then
it is LIVE with every event, those committed during the build included."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config.settings import Settings
from app.events import OrderPlaced, PlacedLine, encode
from app.pipeline.backfill import Backfills, catching_up, mark_new
from app.pipeline.relay import OutboxRelay
from app.pipeline.runner import ProjectionRunner
from app.pipeline.status import projection_statuses
from app.projections.registry import PROJECTIONS
from app.runtime.bootstrap import Stores
from app.runtime.worker import running_loops
from devtools.graphql_client import PAY_ORDER, GraphQLClient
from devtools.read_model_check import read_models, replay_log
from devtools.servers import running_server
from tests.support.read_queries import settle

NEW = "order_history"
OLD = [p.name for p in PROJECTIONS if p.name != NEW]


async def forget_order_history(engine: AsyncEngine) -> None:
    """The read store as it was before the release that added order_history: its tables as
    its migration makes them (empty), and no state."""
    async with engine.begin() as connection:
        await connection.execute(text("TRUNCATE order_history, order_history_applied"))
        await connection.execute(
            text("DELETE FROM projection_state WHERE projection = :p"), {"p": NEW}
        )


async def states(stores: Stores) -> dict[str, str]:
    s = stores.settings
    found = await projection_statuses(
        stores.read_engine, stores.redis, s.redis_prefix, s.stream_partitions, PROJECTIONS
    )
    return {status.name: status.state for status in found}


async def test_only_a_projection_new_beside_others_is_marked_and_only_once(
    stores: Stores,
) -> None:
    read = stores.read_engine
    assert await mark_new(read, PROJECTIONS) == []  # a new store: nothing to catch up
    async with read.begin() as connection:
        for name in OLD:
            await connection.execute(
                text("INSERT INTO projection_state (projection) VALUES (:p)"), {"p": name}
            )
    assert await mark_new(read, PROJECTIONS) == [NEW]
    assert await mark_new(read, PROJECTIONS) == []
    assert await catching_up(read) == {NEW}
    assert (await states(stores))[NEW] == "CATCHING_UP"

    await forget_order_history(read)
    async with read.begin() as connection:  # it applied something: not new
        await connection.execute(
            text("INSERT INTO order_history_applied (aggregate_id, version) VALUES (:id, 1)"),
            {"id": uuid.uuid4()},
        )
    assert await mark_new(read, PROJECTIONS) == []


async def place_directly(write: AsyncEngine) -> OrderPlaced:
    """An order placed as the write side records it, straight into the outbox."""
    line = PlacedLine.priced(uuid.uuid4(), "PEN", "Pen", 150, 2)
    event = OrderPlaced(
        uuid.uuid4(), uuid.uuid4(), "Ada", "ada@example.com", (line,), 2, 300,
        datetime.now(UTC),
    )  # fmt: skip
    async with write.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, "
                "event_type, schema_version, payload, occurred_at) VALUES (gen_random_uuid(), "
                "'Order', :id, 1, 'OrderPlaced', 2, CAST(:payload AS jsonb), now())"
            ),
            {"id": event.order_id, "payload": json.dumps(encode(event))},
        )
    return event


async def rows_of(engine: AsyncEngine, table: str, order: uuid.UUID) -> int:
    column = "order_id" if table == "order_history" else "id"
    async with engine.connect() as connection:
        found = await connection.scalar(
            text(f"SELECT count(*) FROM {table} WHERE {column} = :id"), {"id": order}
        )
    return int(found or 0)


async def test_no_consumer_takes_a_catching_up_projection_until_its_build_is_swapped_in(
    stores: Stores,
) -> None:
    s = stores.settings
    async with stores.read_engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO projection_state (projection, state) VALUES (:p, 'CATCHING_UP')"),
            {"p": NEW},
        )
    before = await place_directly(stores.write_engine)
    runner = ProjectionRunner(PROJECTIONS, stores.read_engine, stores.redis, s)  # no log
    relay = OutboxRelay(stores.write_engine, stores.redis, s)
    async with running_loops([relay, runner]):
        for _ in range(300):
            if await rows_of(stores.read_engine, "order_view", before.order_id):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(2 * s.lease_ttl_s / 3)  # a runner step or two more
        assert await rows_of(stores.read_engine, "order_view", before.order_id) == 1
        assert await rows_of(stores.read_engine, NEW, before.order_id) == 0
        assert not any(unit.projection == NEW for unit in runner.tasks)

        backfills = Backfills(stores.read_engine, stores.write_engine, stores.redis, s)
        backfills.start([p for p in PROJECTIONS if p.name == NEW])
        await asyncio.wait(list(backfills.tasks.values()), timeout=60)
        assert await catching_up(stores.read_engine) == set()
        after = await place_directly(stores.write_engine)  # once live, from the stream
        for _ in range(300):
            if await rows_of(stores.read_engine, NEW, after.order_id):
                break
            await asyncio.sleep(0.1)
    assert await rows_of(stores.read_engine, NEW, before.order_id) == 1  # from the log
    assert await rows_of(stores.read_engine, NEW, after.order_id) == 1


@pytest.mark.timeout(300)
async def test_a_projection_new_to_a_running_shop_builds_itself_and_goes_live(
    settings: Settings, spare_read_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.projections")
    async with running_server(settings) as first, httpx.AsyncClient(timeout=60) as http:
        gql = GraphQLClient(first.graphql_url, http)
        customer = await gql.customer()
        product = await gql.product(stock=1000)
        placed = [await gql.order(customer, (product, 1)) for _ in range(20)]
        paid = [await gql.ok(PAY_ORDER, orderId=o["orderId"]) for o in placed[:10]]
        await settle(gql, *paid, placed[-1])
        stores = first.app.state.api.stores
        await forget_order_history(stores.read_engine)

    async with running_server(settings) as second, httpx.AsyncClient(timeout=60) as http:
        gql = GraphQLClient(second.graphql_url, http)
        during = [await gql.order(customer, (product, 2)) for _ in range(10)]
        stores = second.app.state.api.stores
        for _ in range(600):
            if (await states(stores))[NEW] == "LIVE":
                break
            await asyncio.sleep(0.1)
        await settle(gql, *during)  # consistentWith waits for order_history too
        assert (await states(stores))[NEW] == "LIVE"
        live = await read_models(stores.read_engine)
        async with stores.read_engine.connect() as connection:
            history = await connection.scalar(text("SELECT count(*) FROM order_history"))
        await replay_log(stores.write_engine, spare_read_engine)
    assert live == await read_models(spare_read_engine)
    assert history == 20 + 10 + 10  # placed, paid, placed during the build
    messages = [record.getMessage() for record in caplog.records]
    assert any(f"{NEW} is new to this read store" in m for m in messages), messages
    assert any(f"{NEW} built from the log" in m for m in messages), messages
