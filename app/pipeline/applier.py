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

import asyncpg
from sqlalchemy import TextClause, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.adapters.postgres import unavailable
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
    # What a statement that applies the common case left for apply_batch (see apply_at_once).
    left: list[Delivery] = field(default_factory=list)

    def add(self, other: BatchResult) -> None:
        self.applied += other.applied
        self.skipped += other.skipped
        self.parked += other.parked
        self.changed |= other.changed


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


async def apply_at_once(
    engine: AsyncEngine, work: Sequence[tuple[Projection, Sequence[Delivery]]]
) -> list[BatchResult]:
    """apply_batches for the common case in one statement, run on its own (no BEGIN, no
    COMMIT: one round trip in all). Each projection's guards are locked and advanced, its new
    events folded and its progress counted by the same statement, for every aggregate whose
    guard the statement can decide on alone: not parked, its new events in version order
    from the guard on, and its guard unchanged since the statement's snapshot (else another
    applier wrote it meanwhile, and the fold, which reads that snapshot, would miss what it
    wrote). Each result's `left` holds the deliveries of the other aggregates and the events
    past a gap, none of them applied: apply_batch sorts them out (skipped, parked, or
    OutOfOrder) as before. `work`: each projection at most once, in name order."""
    projections = tuple(projection for projection, _ in work)
    events: dict[tuple[UUID, int], tuple[EventRecord, int]] = {}
    for n, (projection, deliveries) in enumerate(work):
        for delivery in deliveries:
            event = delivery.event
            if event.aggregate_type in projection.aggregate_types:
                key = (event.aggregate_id, event.aggregate_version)
                _, mask = events.get(key, (event, 0))
                events[key] = (event, mask | 1 << n)
    records = [event for event, _ in events.values()]
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver: asyncpg.Connection = raw.driver_connection
        try:
            rows = await driver.fetch(
                _at_once_statement(projections),
                [e.aggregate_id for e in records],
                [e.aggregate_version for e in records],
                [e.event_type for e in records],
                [e.occurred_at for e in records],
                [e.payload_json for e in records],
                [mask for _, mask in events.values()],
            )
        except Exception as error:
            lost = unavailable(error)
            if lost is None:
                raise
            await connection.invalidate()
            raise lost from error
    changed: list[ChangedKeys] = [set() for _ in work]
    guards: list[dict[UUID, tuple[int, int]]] = [{} for _ in work]
    for n, key, aggregate_id, seen, version in rows:
        if key is not None:
            changed[n].add(key)
        else:
            guards[n][aggregate_id] = (seen, version)
    return [
        _sorted_out(projection, deliveries, guard, keys)
        for (projection, deliveries), guard, keys in zip(work, guards, changed, strict=True)
    ]


def _sorted_out(
    projection: Projection,
    deliveries: Sequence[Delivery],
    guard: dict[UUID, tuple[int, int]],
    changed: ChangedKeys,
) -> BatchResult:
    """What apply_at_once did with each delivery: applied (the guard moved past it from where
    the statement saw it), skipped, or left."""
    result = BatchResult(changed=changed)
    done: set[tuple[UUID, int]] = set()
    for delivery in deliveries:
        event = delivery.event
        if event.aggregate_type not in projection.aggregate_types:
            result.skipped += 1
            continue
        seen, version = guard.get(event.aggregate_id, (0, -1))
        key = (event.aggregate_id, event.aggregate_version)
        if seen < event.aggregate_version <= version and key not in done:
            done.add(key)
            result.applied += 1
        elif event.aggregate_version <= seen or key in done:
            result.skipped += 1  # a redelivery, or a second copy in this batch
        else:
            result.left.append(delivery)
    return result


@cache
def _at_once_statement(projections: tuple[Projection, ...]) -> str:
    """The statement of apply_at_once: per projection n (prefix pN_), the events bound for
    it, its guards locked and advanced, its new events, its fold; the progress of all
    counted; then each projection's changed keys and the guards it advanced (the version the
    statement saw, and the one it wrote)."""
    parts = [
        "batch AS (SELECT * FROM unnest($1::uuid[], $2::integer[], $3::text[], "
        "$4::timestamptz[], $5::text[], $6::integer[]) "
        "AS b(aggregate_id, version, event_type, occurred_at, payload, mask))"
    ]
    counts, results = [], []
    for n, projection in enumerate(projections):
        p, guard = f"p{n}_", f'"{projection.applied.name}"'
        handled = ", ".join(f"'{name}'" for name in sorted(projection.handled_type_names))
        # The guard as the statement's snapshot saw it; `latest` is the latest committed row.
        seen = (
            f"(SELECT seen.version FROM {guard} seen WHERE seen.aggregate_id = latest.aggregate_id)"
        )
        parts.append(f"""
{p}batch AS (SELECT aggregate_id, version, event_type, occurred_at, payload
  FROM batch WHERE mask & {1 << n} <> 0),
{p}guard AS (
  INSERT INTO {guard} AS latest (aggregate_id, version)
  SELECT aggregate_id, count(*) FILTER (WHERE version = rank) FROM (
    SELECT aggregate_id, version, row_number() OVER (PARTITION BY aggregate_id ORDER BY version)
      AS rank FROM {p}batch) ranked
  GROUP BY aggregate_id ORDER BY aggregate_id
  ON CONFLICT (aggregate_id) DO UPDATE SET version = latest.version + (
    SELECT count(*) FROM (
      SELECT version, row_number() OVER (ORDER BY version) AS rank FROM {p}batch b
      WHERE b.aggregate_id = latest.aggregate_id AND b.version > latest.version) ranked
    WHERE version - latest.version = rank)
  WHERE NOT latest.parked AND latest.version = {seen}
  RETURNING aggregate_id, coalesce({seen}, 0) AS seen, version
),
{p}fresh AS (
  SELECT b.* FROM {p}batch b JOIN {p}guard g USING (aggregate_id)
  WHERE b.version > g.seen AND b.version <= g.version
),
{p}events AS (
  SELECT aggregate_id, version, event_type, occurred_at, payload::jsonb AS payload
  FROM {p}fresh WHERE event_type IN ({handled})
),
{projection.fold_prefixed(p).strip()}""")
        counts.append(f"SELECT '{projection.name}', count(*) FROM {p}fresh")
        results.append(
            f"SELECT {n}, key, NULL::uuid, NULL::integer, NULL::integer FROM {p}changed "
            f"UNION ALL SELECT {n}, NULL, aggregate_id, seen, version FROM {p}guard"
        )
    parts.append(
        "counted AS ("
        "INSERT INTO projection_state (projection, events_applied, last_applied_at) "
        f"SELECT projection, n, now() FROM ({' UNION ALL '.join(counts)}) c(projection, n) "
        "WHERE n > 0 ORDER BY projection "
        "ON CONFLICT (projection) DO UPDATE SET "
        "events_applied = projection_state.events_applied + excluded.events_applied, "
        "last_applied_at = excluded.last_applied_at)"
    )
    return f"WITH {', '.join(parts)} {' UNION ALL '.join(results)}"
