"""Waiting on the pipeline in tests, and comparing read models with a rebuild."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.projections.consistency import wait_until_applied
from app.projections.registry import PROJECTIONS
from app.services import Services

READ_TABLES = ("order_view", "customer_summary", "product_catalogue", "daily_sales")


async def caught_up(services: Services, token: str, timeout_s: float = 30) -> None:
    """Fail unless every projection concerned applies the token's events in time."""
    result = await wait_until_applied(
        services.read_engine, services.changes, token, PROJECTIONS, timeout_s
    )
    assert result.caught_up, f"projections {result.projections} did not catch up"


async def read_models(engine: AsyncEngine, schema: str = "public") -> dict[str, list[Any]]:
    """Every row of every read table, in key order."""
    tables = {}
    async with engine.connect() as connection:
        for table in READ_TABLES:
            rows = await connection.execute(text(f'SELECT * FROM "{schema}"."{table}" ORDER BY 1'))
            tables[table] = [tuple(row) for row in rows]
    return tables


async def replay_log(write: AsyncEngine, fresh_read: AsyncEngine) -> None:
    """Apply the whole event log, in log order, to every projection of an empty read store."""
    from app.adapters import event_log
    from app.events.serialization import from_stream_fields
    from app.projections.applier import Delivery, apply_batch

    async with write.connect() as source:
        position = 0
        while batch := await event_log.read_after(source, position, 2000, _ALL_TYPES):
            deliveries = [
                Delivery(str(e.position), e.fields, from_stream_fields(e.fields)) for e in batch
            ]
            async with fresh_read.begin() as target:
                for projection in PROJECTIONS:
                    await apply_batch(target, projection, deliveries, track_progress=False)
            position = batch[-1].position


_ALL_TYPES = ("Customer", "Product", "Order")


async def guards(engine: AsyncEngine) -> dict[str, dict[Any, int]]:
    """Each projection's applied version per aggregate."""
    result = {}
    async with engine.connect() as connection:
        for projection in PROJECTIONS:
            rows = await connection.execute(
                text(
                    f"SELECT aggregate_id, version FROM {projection.name}_applied WHERE NOT parked"
                )
            )
            result[projection.name] = dict(rows.all())
    return result


async def latest_versions(write: AsyncEngine) -> dict[Any, int]:
    """The latest version of every aggregate in the event log."""
    async with write.connect() as connection:
        rows = await connection.execute(
            text("SELECT aggregate_id, max(aggregate_version) FROM outbox GROUP BY aggregate_id")
        )
        return dict(rows.all())


async def until_projected(services: Services, timeout_s: float = 90) -> None:
    """Wait until every projection has applied the latest version of every aggregate it follows."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        latest = await latest_versions(services.write_engine)
        applied = await guards(services.read_engine)
        types = await _aggregate_types(services.write_engine)
        behind = {
            projection.name: sum(
                1
                for aggregate, version in latest.items()
                if types[aggregate] in projection.aggregate_types
                and applied[projection.name].get(aggregate, 0) < version
            )
            for projection in PROJECTIONS
        }
        if not any(behind.values()):
            return
        assert time.monotonic() < deadline, f"aggregates not yet projected: {behind}"
        await asyncio.sleep(0.25)


async def _aggregate_types(write: AsyncEngine) -> dict[Any, str]:
    async with write.connect() as connection:
        rows = await connection.execute(
            text("SELECT DISTINCT aggregate_id, aggregate_type FROM outbox")
        )
        return dict(rows.all())
