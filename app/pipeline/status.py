"""How far each projection is: the numbers `shop projections status`, /metrics, the
`projections` query and the `projectionStatus` subscription all report.

Lag is counted the same on Redis 6.2 and 7: the relay counts the entries it adds to each
partition and each projection counts the entries it acknowledges, so lag in events is the
difference. Lag in seconds is the age of the oldest entry a projection has not acknowledged:
the first pending entry, or else the first entry after the group's last delivered one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from redis.exceptions import ResponseError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.redis import RedisClient
from app.events.streams import acked_key, group_name, published_key, stream_key
from app.pipeline.dead_letters import count_dead_letters
from app.projections.base import Projection
from app.projections.tables import projection_state

CATCHING_UP_AFTER_S = 1.0
STALLED_AFTER_S = 30.0


@dataclass(frozen=True)
class ProjectionStatus:
    name: str
    state: str  # LIVE, CATCHING_UP, REBUILDING or STALLED
    lag_events: int
    lag_seconds: float
    events_applied: int
    dead_letters: int
    last_applied_at: datetime | None


async def projection_statuses(
    engine: AsyncEngine,
    redis: RedisClient,
    prefix: str,
    partitions: int,
    projections: Sequence[Projection],
) -> list[ProjectionStatus]:
    """The status of every projection, in the given order."""
    async with engine.connect() as connection:
        rows = {r.projection: r for r in await connection.execute(select(projection_state))}
        parked = await count_dead_letters(connection)
    now = time.time()
    statuses = []
    for projection in projections:
        events, oldest = await _lag(redis, prefix, partitions, projection.name)
        row = rows.get(projection.name)
        last = row.last_applied_at if row else None
        lag_seconds = max(0.0, now - oldest) if oldest is not None and events > 0 else 0.0
        state = _state(row.state if row else "LIVE", events, lag_seconds, last, now)
        statuses.append(
            ProjectionStatus(projection.name, state, events, round(lag_seconds, 3),
                             row.events_applied if row else 0, parked.get(projection.name, 0), last)
        )  # fmt: skip
    return statuses


def _state(
    stored: str, lag_events: int, lag_seconds: float, last: datetime | None, now: float
) -> str:
    if stored in ("REBUILDING", "CATCHING_UP"):  # an operator's rebuild; a new projection
        return stored
    idle = now - last.timestamp() if last is not None else float("inf")
    if lag_events > 0 and lag_seconds > STALLED_AFTER_S and idle > STALLED_AFTER_S:
        return "STALLED"
    if lag_seconds > CATCHING_UP_AFTER_S:
        return "CATCHING_UP"
    return "LIVE"


async def _lag(
    redis: RedisClient, prefix: str, partitions: int, projection: str
) -> tuple[int, float | None]:
    """Unacknowledged entries over all partitions, and the time of the oldest (epoch s)."""
    pipe = redis.pipeline(transaction=False)
    for partition in range(partitions):
        pipe.get(published_key(prefix, partition))
        pipe.get(acked_key(prefix, partition, projection))
    counts = await pipe.execute()
    lag = sum(max(0, int(published or 0) - int(acked or 0))
              for published, acked in zip(counts[::2], counts[1::2], strict=True))  # fmt: skip
    if lag == 0:
        return 0, None
    oldest = [await _oldest_unacked(redis, stream_key(prefix, p), group_name(projection))
              for p in range(partitions)]  # fmt: skip
    times = [t for t in oldest if t is not None]
    return lag, min(times) if times else None


async def _oldest_unacked(redis: RedisClient, stream: str, group: str) -> float | None:
    # redis-py's annotations cover RESP3 too; with RESP2 these are plain lists and dicts.
    pending: Any
    groups: Any
    first: Any
    after: Any
    try:
        pending = await redis.xpending(stream, group)
        if pending and pending.get("pending"):
            return _entry_time(pending["min"])
        groups = await redis.xinfo_groups(stream)
    except ResponseError:  # no stream or no group yet: everything is unread
        first = await redis.xrange(stream, count=1)
        return _entry_time(first[0][0]) if first else None
    last = next((g["last-delivered-id"] for g in groups if g["name"] == group), "0-0")
    after = await redis.xrange(stream, min=f"({last}", count=1)
    return _entry_time(after[0][0]) if after else None


def _entry_time(entry_id: str | bytes) -> float:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0]) / 1000
