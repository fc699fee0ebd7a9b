"""Dead letters: events parked after repeated failures, and what operators do with them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.events.serialization import from_stream_fields
from app.pipeline.applier import Delivery, apply_batch
from app.projections.base import Projection
from app.projections.tables import dead_letters

_NIL = uuid.UUID(int=0)


@dataclass(frozen=True)
class DeadLetter:
    id: int
    projection: str
    aggregate_id: uuid.UUID
    aggregate_version: int
    event_type: str
    error: str
    attempts: int
    parked_at: datetime


async def park_undecodable(
    connection: AsyncConnection,
    projection: Projection,
    entry_id: str,
    fields: Mapping[str, str],
    error: str,
) -> None:
    """Park a stream entry this code cannot read (a newer writer's event type or version,
    say), and its aggregate with it: the aggregate's later events park behind it, as behind a
    poison event, rather than arrive after a gap that would stop the partition."""
    aggregate_id = _uuid(fields.get("aggregate_id"))
    if aggregate_id is not None:
        applied = projection.applied
        await connection.execute(
            insert(applied)
            .values(aggregate_id=aggregate_id, version=0, parked=True)
            .on_conflict_do_update(index_elements=[applied.c.aggregate_id], set_={"parked": True})
        )
    await connection.execute(
        dead_letters.insert().values(
            projection=projection.name,
            aggregate_id=aggregate_id or _NIL,
            aggregate_version=_int(fields.get("version")),
            event_id=_uuid(fields.get("id")) or uuid.uuid5(_NIL, entry_id),
            event_type=fields.get("type", "?"),
            envelope=dict(fields),
            error=error[:4000],
            attempts=0,
            parked_at=datetime.now(UTC),
        )
    )


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(hex=value) if value else None
    except ValueError:
        return None


def _int(value: str | None) -> int:
    return int(value) if value and value.isdigit() else 0


async def list_dead_letters(engine: AsyncEngine, projection: str | None = None) -> list[DeadLetter]:
    """Parked events, oldest aggregate version first within each aggregate."""
    query = select(dead_letters).order_by(
        dead_letters.c.projection, dead_letters.c.aggregate_id, dead_letters.c.aggregate_version
    )
    if projection is not None:
        query = query.where(dead_letters.c.projection == projection)
    async with engine.connect() as connection:
        rows = await connection.execute(query)
        return [
            DeadLetter(r.id, r.projection, r.aggregate_id, r.aggregate_version, r.event_type,
                       r.error, r.attempts, r.parked_at)
            for r in rows
        ]  # fmt: skip


async def count_dead_letters(connection: AsyncConnection) -> dict[str, int]:
    """Parked events per projection."""
    rows = await connection.execute(
        select(dead_letters.c.projection, func.count()).group_by(dead_letters.c.projection)
    )
    return {projection: count for projection, count in rows}


@dataclass(frozen=True)
class RetryOutcome:
    projection: str
    aggregate_id: uuid.UUID
    applied: int
    error: str | None


async def retry(
    engine: AsyncEngine, projections: Sequence[Projection], ids: Sequence[int] = ()
) -> list[RetryOutcome]:
    """Apply parked events again, each aggregate's in version order, in one transaction each.

    With `ids`, only the aggregates those dead letters belong to are retried. An aggregate
    whose events still fail stays parked, with everything behind it.
    """
    by_name: dict[str, Projection] = {p.name: p for p in projections}
    query = select(dead_letters.c.projection, dead_letters.c.aggregate_id).distinct()
    if ids:
        query = query.where(dead_letters.c.id.in_(ids))
    async with engine.connect() as connection:
        targets = (await connection.execute(query.order_by("projection", "aggregate_id"))).all()
    return [
        await _retry_aggregate(engine, by_name[name], aggregate_id)
        for name, aggregate_id in targets
        if name in by_name
    ]


async def _retry_aggregate(
    engine: AsyncEngine, projection: Projection, aggregate_id: uuid.UUID
) -> RetryOutcome:
    try:
        async with engine.begin() as connection:
            rows = (
                await connection.execute(
                    select(dead_letters)
                    .where(dead_letters.c.projection == projection.name)
                    .where(dead_letters.c.aggregate_id == aggregate_id)
                    .order_by(dead_letters.c.aggregate_version)
                    .with_for_update()
                )
            ).all()
            deliveries = [_delivery(row) for row in rows]
            await _set_parked(connection, projection, aggregate_id, parked=False)
            result = await apply_batch(connection, projection, deliveries, allow_gaps=True)
            await connection.execute(
                delete(dead_letters).where(dead_letters.c.id.in_([r.id for r in rows]))
            )
    except Exception as error:  # reported per aggregate; the others are still retried
        return RetryOutcome(projection.name, aggregate_id, 0, f"{type(error).__name__}: {error}")
    return RetryOutcome(projection.name, aggregate_id, result.applied, None)


def _delivery(row: Any) -> Delivery:
    return Delivery(f"dead-letter:{row.id}", row.envelope, from_stream_fields(row.envelope))


async def discard(
    engine: AsyncEngine, projections: Sequence[Projection], ids: Sequence[int]
) -> int:
    """Drop dead letters for good; an aggregate left with none flows normally again."""
    by_name: dict[str, Projection] = {p.name: p for p in projections}
    async with engine.begin() as connection:
        gone = (
            await connection.execute(
                delete(dead_letters)
                .where(dead_letters.c.id.in_(ids))
                .returning(
                    dead_letters.c.projection,
                    dead_letters.c.aggregate_id,
                    dead_letters.c.aggregate_version,
                )
            )
        ).all()
        discarded: dict[tuple[str, uuid.UUID], int] = {}
        for name, aggregate_id, version in gone:
            key = (name, aggregate_id)
            discarded[key] = max(version, discarded.get(key, 0))
        for (name, aggregate_id), version in discarded.items():
            left = await connection.scalar(
                select(func.count())
                .where(dead_letters.c.projection == name)
                .where(dead_letters.c.aggregate_id == aggregate_id)
            )
            if not left and name in by_name:
                # Discarded events count as handled: the aggregate's next event follows them.
                await _set_parked(
                    connection, by_name[name], aggregate_id, parked=False, past=version
                )
    return len(gone)


async def _set_parked(
    connection: AsyncConnection,
    projection: Projection,
    aggregate_id: uuid.UUID,
    *,
    parked: bool,
    past: int = 0,
) -> None:
    applied = projection.applied
    await connection.execute(
        update(applied)
        .where(applied.c.aggregate_id == aggregate_id)
        .values(parked=parked, version=func.greatest(applied.c.version, past))
    )
