"""The outbox: events appended in the command's transaction; NOTIFY wakes the relay on commit."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.events import RecordedEvent, encode
from app.events.consistency_token import AggregateVersion
from app.write.domain.aggregate import Aggregate
from app.write.tables import outbox

NOTIFY_CHANNEL = "shop_outbox"


def record(aggregates: Iterable[Aggregate], now: datetime) -> list[RecordedEvent]:
    """The pending events of these aggregates, each with a fresh id, its version and the time."""
    return [
        RecordedEvent(uuid.uuid4(), version, now, event)
        for aggregate in aggregates
        for version, event in aggregate.pending
    ]


def produced(aggregates: Iterable[Aggregate]) -> list[AggregateVersion]:
    """Each aggregate version the pending events of these aggregates will create."""
    return [
        AggregateVersion(
            events[-1][1].aggregate_type,
            aggregate.id,
            aggregate.version,
            tuple(event.type_name() for _, event in events),
        )
        for aggregate in aggregates
        if (events := aggregate.pending)
    ]


async def append(connection: AsyncConnection, events: Sequence[RecordedEvent]) -> None:
    """Store the events; delivered to listeners only if the transaction commits."""
    if not events:
        return
    await connection.execute(
        insert(outbox),
        [
            {
                "event_id": e.event_id,
                "aggregate_type": e.aggregate_type,
                "aggregate_id": e.aggregate_id,
                "aggregate_version": e.aggregate_version,
                "event_type": e.event_type,
                "schema_version": e.schema_version,
                "payload": encode(e.event),
                "occurred_at": e.occurred_at,
            }
            for e in events
        ],
    )
    # NOTIFY is transactional: the relay hears it only once these rows are visible.
    await connection.execute(select(func.pg_notify(NOTIFY_CHANNEL, "")))
