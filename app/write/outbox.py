"""The outbox: events appended in the command's transaction; NOTIFY wakes the relay on commit."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from app.events import RecordedEvent, encode
from app.events.consistency_token import AggregateVersion
from app.write.domain.aggregate import Aggregate

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


def rows(events: Iterable[RecordedEvent]) -> Iterator[tuple[Any, ...]]:
    """The events' outbox rows (app/write/write_set.py's EVENTS columns): the command's write
    statement inserts them and NOTIFYs the relay, which hears it only once they commit."""
    for e in events:
        payload = json.dumps(encode(e.event), separators=(",", ":"))
        yield (e.event_id, e.aggregate_type, e.aggregate_id, e.aggregate_version, e.event_type,
               e.schema_version, payload, e.occurred_at)  # fmt: skip
