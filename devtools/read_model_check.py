"""Are the read models what the event log says? Replay the log into an empty read store and
compare row by row; count the aggregates the projections have not applied yet; and what each
event does to a product's stock.

The soak (devtools/soak, run by scripts/soak.py) and the pipeline and fault tests judge the
pipeline with these.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.events import Event, OrderCancelled, OrderPlaced, ProductCreated, ProductRestocked
from app.events.serialization import EventRecord, from_stream_fields
from app.pipeline import event_log
from app.pipeline.applier import Delivery, apply_batch
from app.projections.registry import PROJECTIONS
from devtools.store_snapshot import Rows, table_rows

READ_TABLES = tuple(table.name for projection in PROJECTIONS for table in projection.tables)
AGGREGATE_TYPES = ("Customer", "Product", "Order")
_LOG_BATCH = 2000


async def read_models(engine: AsyncEngine) -> Rows:
    """Every row of every read table, in key order (the first column, or the first two)."""
    return await table_rows(engine, READ_TABLES, order_by="1, 2")  # order_history: (order, version)


async def log_batches(write: AsyncEngine) -> AsyncIterator[list[Delivery]]:
    """The whole event log, in log order, a batch at a time."""
    async with write.connect() as source:
        position = 0
        while batch := await event_log.read_after(source, position, _LOG_BATCH, AGGREGATE_TYPES):
            yield [Delivery(str(e.position), e.fields, from_stream_fields(e.fields)) for e in batch]
            position = batch[-1].position


async def whole_log(write: AsyncEngine) -> list[EventRecord]:
    return [delivery.event async for batch in log_batches(write) for delivery in batch]


async def replay_log(write: AsyncEngine, fresh_read: AsyncEngine) -> int:
    """Apply the whole event log, in log order, to every projection of an empty read store;
    return how many events it holds."""
    replayed = 0
    async for deliveries in log_batches(write):
        async with fresh_read.begin() as target:
            for projection in PROJECTIONS:
                await apply_batch(
                    target, projection, deliveries, track_progress=False, allow_gaps=True
                )
        replayed += len(deliveries)
    return replayed


def stock_changes(event: Event) -> list[tuple[str, int]]:
    """(product id, change) for each product whose stock the event changes: created with its
    initial stock, restocked, reserved by an order placed, released by one cancelled."""
    if isinstance(event, ProductCreated):
        return [(str(event.product_id), event.stock)]
    if isinstance(event, ProductRestocked):
        return [(str(event.product_id), event.quantity)]
    if isinstance(event, OrderPlaced | OrderCancelled):
        sign = -1 if isinstance(event, OrderPlaced) else 1
        return [(str(line.product_id), sign * line.quantity) for line in event.lines]
    return []


def differing_rows(live: Rows, replayed: Rows) -> list[tuple[str, Any]]:
    """(table, key) of every row missing from one side or not the same on both."""
    found = []
    for table in READ_TABLES:
        mine = {row[0]: row for row in live[table]}
        theirs = {row[0]: row for row in replayed[table]}
        for key in sorted(mine.keys() | theirs.keys(), key=str):
            if mine.get(key) != theirs.get(key):
                found.append((table, key))
    return found


async def projections_behind(write: AsyncEngine, read: AsyncEngine) -> dict[str, int]:
    """Per projection, how many of the aggregates it follows it has not applied up to their
    latest version in the log (parked ones count as not applied)."""
    async with write.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT aggregate_id, aggregate_type, max(aggregate_version) AS version "
                "FROM outbox GROUP BY aggregate_id, aggregate_type"
            )
        )
        latest = rows.all()
    behind: dict[str, int] = {}
    async with read.connect() as connection:
        for projection in PROJECTIONS:
            guard = f"{projection.name}_applied"
            rows = await connection.execute(
                text(f"SELECT aggregate_id, version FROM {guard} WHERE NOT parked")
            )
            applied: dict[Any, int] = dict(rows.all())
            behind[projection.name] = sum(
                1
                for aggregate_id, aggregate_type, version in latest
                if aggregate_type in projection.aggregate_types
                and applied.get(aggregate_id, 0) < version
            )
    return behind


async def until_projected(
    write: AsyncEngine,
    read: AsyncEngine,
    timeout_s: float,
    waiting: Callable[[dict[str, int]], None] | None = None,
) -> dict[str, int]:
    """Wait until every projection has applied every aggregate's latest version, or until
    `timeout_s` has passed; return what `projections_behind` says then (all 0 when caught
    up). `waiting` hears each count while it is not."""
    deadline = time.monotonic() + timeout_s
    while True:
        behind = await projections_behind(write, read)
        if not any(behind.values()) or time.monotonic() > deadline:
            return behind
        if waiting is not None:
            waiting(behind)
        await asyncio.sleep(0.25)
