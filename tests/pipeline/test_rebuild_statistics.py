"""What a rebuild swaps in: tables with the planner's statistics and their visibility maps,
the live tables' indexes under their own names, and nothing from an event it cannot read."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from app.pipeline.rebuild import RebuildFailed, rebuild
from app.projections.registry import PROJECTIONS
from app.runtime.bootstrap import Stores

NAMES = [table.name for projection in PROJECTIONS for table in projection.all_tables]


async def indexes(stores: Stores) -> list[tuple[str, str]]:
    async with stores.read_engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
                "AND tablename = ANY(:names) ORDER BY indexname"
            ),
            {"names": NAMES},
        )
        return [(name, definition) for name, definition in rows]


async def test_tables_swapped_in_by_a_rebuild_have_planner_statistics(stores: Stores) -> None:
    await rebuild(PROJECTIONS, stores.read_engine, stores.write_engine, lambda *_: None)
    async with stores.read_engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT relname, reltuples FROM pg_class WHERE relkind = 'r' "
                "AND relnamespace = 'public'::regnamespace AND relname = ANY(:names)"
            ),
            {"names": NAMES},
        )
        never_analyzed = [name for name, tuples in rows if tuples < 0]  # -1: never counted
    assert NAMES
    assert never_analyzed == []


async def test_a_rebuild_keeps_every_index_under_its_name(stores: Stores) -> None:
    before = await indexes(stores)
    assert any(name == "order_view_customer" for name, _ in before)
    await rebuild(PROJECTIONS, stores.read_engine, stores.write_engine, lambda *_: None)
    assert await indexes(stores) == before


async def test_a_rebuild_refuses_an_event_version_newer_than_the_code(stores: Stores) -> None:
    order_id, customer_id = uuid.uuid4(), uuid.uuid4()
    async with stores.write_engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, "
                "event_type, schema_version, payload, occurred_at) VALUES "
                "(:event, 'Order', :order, 1, 'OrderPaid', 99, CAST(:payload AS jsonb), now())"
            ),
            {"event": uuid.uuid4(), "order": order_id,
             "payload": f'{{"order_id": "{order_id}", "customer_id": "{customer_id}"}}'},
        )  # fmt: skip
    with pytest.raises(RebuildFailed, match="OrderPaid schema version 99 at position"):
        await rebuild(PROJECTIONS, stores.read_engine, stores.write_engine, lambda *_: None)
    async with stores.read_engine.connect() as connection:
        states = await connection.scalars(text("SELECT DISTINCT state FROM projection_state"))
        assert list(states) in ([], ["LIVE"])
        assert await connection.scalar(text("SELECT count(*) FROM order_view")) == 0
        staged = await connection.scalar(
            text("SELECT count(*) FROM pg_tables WHERE tablename = 'event_log'")
        )
    assert staged == 0  # the staged log is dropped whatever happens
