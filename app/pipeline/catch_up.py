"""Read-your-writes: wait until the projections concerned have applied a token's events."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.events.consistency_token import AggregateVersion
from app.pipeline.change_feed import ChangeFeed
from app.projections.base import Projection
from app.projections.names import ProjectionName

# Announcements wake waiters; this slow re-check only covers one lost in transit.
_RECHECK_S = 0.5


@dataclass(frozen=True)
class CaughtUp:
    caught_up: bool
    projections: tuple[ProjectionName, ...]
    waited_ms: int


def concerned(
    projections: Iterable[Projection], versions: Sequence[AggregateVersion]
) -> list[Projection]:
    """The projections that apply any of the token's event types."""
    types = {event_type for version in versions for event_type in version.event_types}
    return [p for p in projections if p.handled_type_names & types]


async def has_applied(
    engine: AsyncEngine, projection: Projection, versions: Sequence[AggregateVersion]
) -> bool:
    """True when the projection's guard is at or past every version it follows."""
    wanted = {
        v.aggregate_id: v.version
        for v in versions
        if v.aggregate_type in projection.aggregate_types
    }
    if not wanted:
        return True
    applied = projection.applied
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(applied.c.aggregate_id, applied.c.version).where(
                applied.c.aggregate_id.in_(wanted)
            )
        )
        have = {row.aggregate_id: row.version for row in rows}
    return all(have.get(key, 0) >= version for key, version in wanted.items())


async def wait_until_applied(
    engine: AsyncEngine,
    feed: ChangeFeed,
    versions: Sequence[AggregateVersion],
    projections: Iterable[Projection],
    timeout_s: float,
) -> CaughtUp:
    """Wait (at most `timeout_s`) until the concerned projections among `projections` have
    applied a token's aggregate versions."""
    started = time.monotonic()
    waiting_on = concerned(projections, versions)
    names = tuple(p.name for p in waiting_on)
    async with feed.watch(names) as watch:
        while waiting_on:
            waiting_on = [p for p in waiting_on if not await has_applied(engine, p, versions)]
            left = timeout_s - (time.monotonic() - started)
            if not waiting_on or left <= 0:
                break
            await watch.wait(min(left, _RECHECK_S))
    waited_ms = int((time.monotonic() - started) * 1000)
    return CaughtUp(not waiting_on, names, waited_ms)
