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
from app.projections.base import BOUND_EVENTS, Projection, bound_events
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
    [result] = await apply_batches(
        connection, [(projection, deliveries)], track_progress=track_progress, allow_gaps=allow_gaps
    )
    return result


async def apply_batches(
    connection: AsyncConnection,
    work: Sequence[tuple[Projection, Sequence[Delivery]]],
    *,
    track_progress: bool = True,
    allow_gaps: bool = False,
) -> list[BatchResult]:
    """apply_batch for several projections (each at most once, in name order) in the
    caller's transaction: their guards are locked in one round trip, then each projection's
    new events are folded and its guard advanced in one more."""
    followed = [
        [d for d in deliveries if d.event.aggregate_type in projection.aggregate_types]
        for projection, deliveries in work
    ]
    guards = await _lock_guards(
        connection,
        [(projection, {d.event.aggregate_id for d in mine})
         for (projection, _), mine in zip(work, followed, strict=True)],
    )  # fmt: skip
    results = []
    for (projection, deliveries), mine, guard in zip(work, followed, guards, strict=True):
        result = BatchResult(skipped=len(deliveries) - len(mine))
        fresh, to_park = _sort_out(projection, mine, guard, result, allow_gaps=allow_gaps)
        result.changed = await _fold_and_advance(
            connection, projection, fresh, count_progress=track_progress
        )
        if to_park:
            await park(connection, projection, to_park, "waiting behind an earlier parked event", 0)
        result.applied, result.parked = len(fresh), len(to_park)
        results.append(result)
    return results


def _sort_out(
    projection: Projection,
    deliveries: Sequence[Delivery],
    guard: dict[UUID, tuple[int, bool]],
    result: BatchResult,
    *,
    allow_gaps: bool,
) -> tuple[list[Delivery], list[Delivery]]:
    """The new events to apply, and those to park behind a parked one; redeliveries are
    counted as skipped; an event that skips a version raises OutOfOrder."""
    fresh: list[Delivery] = []
    to_park: list[Delivery] = []
    for delivery in deliveries:
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
    return fresh, to_park


@cache
def _lock_statement(tables: tuple[str, ...]) -> TextClause:
    """Every aggregate of the batch gets a guard row if it has none, and each row is locked
    and read, in one statement: ON CONFLICT DO UPDATE locks the row it updates (the update
    changes nothing), and RETURNING gives the latest committed version even when another
    applier committed it after this statement began (it waits for that one). One statement
    for the guards of all the projections given, whatever the batch size: arrays are bound
    whole and unnested, so nothing is compiled per batch. Table names are unqualified, so a
    rebuild's search_path points them at its shadow copies."""
    locks = ", ".join(
        f'g{n} AS (INSERT INTO "{table}" AS guard (aggregate_id, version) '
        f"SELECT unnest(CAST(:ids{n} AS uuid[])), 0 "
        "ON CONFLICT (aggregate_id) DO UPDATE SET version = guard.version "
        "RETURNING aggregate_id, version, parked)"
        for n, table in enumerate(tables)
    )
    # Read in order: g0's rows are locked first, then g1's, and so on.
    reads = " UNION ALL ".join(
        f"SELECT {n} AS guard, aggregate_id, version, parked FROM g{n}" for n in range(len(tables))
    )
    return text(f"WITH {locks} {reads}")


async def _lock_guards(
    connection: AsyncConnection, wanted: Sequence[tuple[Projection, set[UUID]]]
) -> list[dict[UUID, tuple[int, bool]]]:
    """Lock (making them if need be) and read the guard rows of these aggregates, for each
    projection."""
    guards: list[dict[UUID, tuple[int, bool]]] = [{} for _ in wanted]
    if not any(ids for _, ids in wanted):
        return guards
    # A guard row is made for a new aggregate before it is locked: with nothing to lock,
    # two appliers of its first event (a worker whose lease lapsed while it still ran, and
    # its successor) would both apply it. Rows are taken in id order, and projections in the
    # order given (name order), so two appliers cannot deadlock on the guards.
    statement = _lock_statement(tuple(projection.applied.name for projection, _ in wanted))
    parameters = {f"ids{n}": sorted(ids) for n, (_, ids) in enumerate(wanted)}
    for row in await connection.execute(statement, parameters):
        guards[row.guard][row.aggregate_id] = (row.version, row.parked)
    return guards


@cache
def _fold_and_advance_statement(projection: Projection) -> TextClause:
    """The projection's fold over the batch's new events of the types it handles, the guard
    advanced to the last version applied of every aggregate, and the projection's progress
    counted (if asked): one statement, one round trip. The guard rows are locked already
    (by the statement above), and the fold does not read them."""
    also = (
        ", advanced AS ("
        f'INSERT INTO "{projection.applied.name}" (aggregate_id, version) '
        "SELECT * FROM unnest(CAST(:guard_ids AS uuid[]), CAST(:guard_versions AS integer[])) "
        "ON CONFLICT (aggregate_id) DO UPDATE SET version = excluded.version"
        "), counted AS ("
        "INSERT INTO projection_state (projection, events_applied, last_applied_at) "
        "SELECT :projection, :applied, now() WHERE CAST(:count_progress AS boolean) "
        "ON CONFLICT (projection) DO UPDATE SET "
        "events_applied = projection_state.events_applied + excluded.events_applied, "
        "last_applied_at = excluded.last_applied_at)"
    )
    return text(projection.fold_over(BOUND_EVENTS, keys=True, also=also))


async def _fold_and_advance(
    connection: AsyncConnection,
    projection: Projection,
    fresh: Sequence[Delivery],
    *,
    count_progress: bool,
) -> ChangedKeys:
    """Apply the new events and advance the guard past them; the keys that changed."""
    if not fresh:
        return set()
    latest: dict[UUID, int] = {}
    handled_types = projection.handled_type_names
    handled = []
    for delivery in fresh:
        event = delivery.event
        latest[event.aggregate_id] = max(latest.get(event.aggregate_id, 0), event.aggregate_version)
        if event.event_type in handled_types:
            handled.append(event)
    ordered = sorted(latest)
    rows = await connection.execute(
        _fold_and_advance_statement(projection),
        {
            **bound_events(handled),
            "guard_ids": ordered,
            "guard_versions": [latest[key] for key in ordered],
            "projection": projection.name,
            "applied": len(fresh),
            "count_progress": count_progress,
        },
    )
    return set(rows.scalars())


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
