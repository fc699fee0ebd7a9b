"""Apply a batch of deliveries to one projection, exactly once, in one read-store transaction.

The projection's version guard is locked for the batch's aggregates: an event at or below
the applied version is a redelivery and skipped; an aggregate with a parked event parks its
later events too; an event that skips a version is refused (OutOfOrder) and nothing of the
batch is applied, so an aggregate's events are applied in version order or not at all.
Effects, guard and progress commit together, so a crash anywhere leaves
either all of the batch applied or none of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from uuid import UUID

from sqlalchemy import TextClause, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.events.serialization import EventRecord
from app.projections.base import Projection
from app.projections.change_keys import ChangedKeys
from app.projections.tables import dead_letters


@dataclass(frozen=True)
class Delivery:
    """One stream entry as it arrived, and the event in it."""

    entry_id: str
    fields: Mapping[str, str]
    event: EventRecord


class OutOfOrder(Exception):
    """An event arrived before an earlier event of its aggregate was applied: for a moment,
    two consumers of one partition (a lapsed lease) split its entries between them. Applying
    it would make the earlier one look like a redelivery and lose it; read again instead."""


@dataclass
class BatchResult:
    applied: int = 0
    skipped: int = 0
    parked: int = 0
    changed: ChangedKeys = field(default_factory=set)


async def apply_batch(
    connection: AsyncConnection,
    projection: Projection,
    deliveries: Sequence[Delivery],
    *,
    track_progress: bool = True,
    allow_gaps: bool = False,
) -> BatchResult:
    """Apply what is new in `deliveries`; the caller owns (and commits) the transaction.

    `allow_gaps` is for replaying the log as it is (a rebuild) and for an operator's retry of
    dead letters, some of which may have been discarded on purpose."""
    result = BatchResult()
    followed = [d for d in deliveries if d.event.aggregate_type in projection.aggregate_types]
    result.skipped = len(deliveries) - len(followed)
    guard = await _lock_guard(connection, projection, {d.event.aggregate_id for d in followed})
    fresh: list[Delivery] = []
    to_park: list[Delivery] = []
    for delivery in followed:
        version, parked = guard.get(delivery.event.aggregate_id, (0, False))
        if delivery.event.aggregate_version <= version:
            result.skipped += 1
        elif parked:
            to_park.append(delivery)
        elif delivery.event.aggregate_version > version + 1 and not allow_gaps:
            event = delivery.event
            raise OutOfOrder(
                f"{projection.name}: {event.aggregate_type} {event.aggregate_id} "
                f"v{event.aggregate_version} arrived before v{version + 1}"
            )
        else:
            fresh.append(delivery)
            guard[delivery.event.aggregate_id] = (delivery.event.aggregate_version, False)
    handled_types = projection.handled_type_names
    handled = [d.event for d in fresh if d.event.event_type in handled_types]
    result.changed = await projection.apply(connection, handled)
    await _advance_guard(connection, projection, fresh, count_progress=track_progress)
    if to_park:
        await park(connection, projection, to_park, "waiting behind an earlier parked event", 0)
    result.applied, result.parked = len(fresh), len(to_park)
    return result


@cache
def _guard_statements(table: str) -> tuple[TextClause, TextClause, TextClause]:
    """One statement each, whatever the batch size: arrays are bound whole and unnested, so
    nothing is compiled per batch. Table names are unqualified, so a rebuild's search_path
    points them at its shadow copies."""
    advance = (
        f'INSERT INTO "{table}" (aggregate_id, version) '
        "SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:versions AS integer[])) "
        "ON CONFLICT (aggregate_id) DO UPDATE SET version = excluded.version"
    )
    return (
        # Every aggregate of the batch gets a guard row if it has none, and each row is locked
        # and read, in one statement: ON CONFLICT DO UPDATE locks the row it updates (the
        # update changes nothing), and RETURNING gives the latest committed version even when
        # another applier committed it after this statement began (it waits for that one).
        text(
            f'INSERT INTO "{table}" AS guard (aggregate_id, version) '
            "SELECT unnest(CAST(:ids AS uuid[])), 0 "
            "ON CONFLICT (aggregate_id) DO UPDATE SET version = guard.version "
            "RETURNING aggregate_id, version, parked"
        ),
        text(advance),
        # The same, and the projection's progress counted (applied events, the time): one
        # round trip for both.
        text(
            f"WITH advanced AS ({advance}) "
            "INSERT INTO projection_state (projection, events_applied, last_applied_at) "
            "VALUES (:projection, :applied, now()) ON CONFLICT (projection) DO UPDATE SET "
            "events_applied = projection_state.events_applied + excluded.events_applied, "
            "last_applied_at = excluded.last_applied_at"
        ),
    )


async def _lock_guard(
    connection: AsyncConnection, projection: Projection, aggregate_ids: set[UUID]
) -> dict[UUID, tuple[int, bool]]:
    if not aggregate_ids:
        return {}
    lock, _, _ = _guard_statements(projection.applied.name)
    # A guard row is made for a new aggregate before it is locked: with nothing to lock,
    # two appliers of its first event (a worker whose lease lapsed while it still ran, and
    # its successor) would both apply it. Rows are taken in id order, so two appliers of
    # one projection cannot deadlock on the guard.
    rows = await connection.execute(lock, {"ids": sorted(aggregate_ids)})
    return {row.aggregate_id: (row.version, row.parked) for row in rows}


async def _advance_guard(
    connection: AsyncConnection,
    projection: Projection,
    fresh: Sequence[Delivery],
    *,
    count_progress: bool,
) -> None:
    latest: dict[UUID, int] = {}
    for delivery in fresh:
        event = delivery.event
        latest[event.aggregate_id] = max(latest.get(event.aggregate_id, 0), event.aggregate_version)
    if not latest:
        return
    _, advance, advance_and_count = _guard_statements(projection.applied.name)
    ordered = sorted(latest)
    parameters = {"ids": ordered, "versions": [latest[key] for key in ordered]}
    if count_progress:  # applied events and the time, in the applying transaction
        parameters.update(projection=projection.name, applied=len(fresh))
        await connection.execute(advance_and_count, parameters)
    else:
        await connection.execute(advance, parameters)


async def park(
    connection: AsyncConnection,
    projection: Projection,
    deliveries: Sequence[Delivery],
    error: str,
    attempts: int,
) -> None:
    """Move events to the dead letters and mark their aggregates parked for this projection."""
    now = datetime.now(UTC)
    await connection.execute(
        insert(dead_letters)
        .values(
            [
                {
                    "projection": projection.name,
                    "aggregate_id": d.event.aggregate_id,
                    "aggregate_version": d.event.aggregate_version,
                    "event_id": d.event.event_id,
                    "event_type": d.event.event_type,
                    "envelope": dict(d.fields),
                    "error": error[:4000],
                    "attempts": attempts,
                    "parked_at": now,
                }
                for d in deliveries
            ]
        )
        .on_conflict_do_nothing(constraint="dead_letters_event")
    )
    statement = insert(projection.applied).values(
        [{"aggregate_id": i, "version": 0, "parked": True}
         for i in sorted({d.event.aggregate_id for d in deliveries})]
    )  # fmt: skip
    await connection.execute(
        statement.on_conflict_do_update(index_elements=["aggregate_id"], set_={"parked": True})
    )
