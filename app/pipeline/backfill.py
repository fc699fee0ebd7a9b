"""A projection added to a running system builds itself from the event log on first start.

Its tables come empty from their migration, and the streams no longer hold the events before
it (they are trimmed), so its consumers cannot start from the stream: the first events they
would meet are some orders' later ones. So a worker that starts marks every projection new to
the read store CATCHING_UP (`mark_new`): one with no projection_state row and an empty guard,
while another projection has a row (on a new store nothing is marked, there is nothing to
catch up). Runners take no partition of a CATCHING_UP projection; one of them points the
projection's consumer groups at the end of each stream, then rebuilds it from the log
(`app/pipeline/rebuild.py`, shown as CATCHING_UP, not REBUILDING, and left so if it fails, to
be tried again), and the swap makes it LIVE. Its consumers then start where the groups point:
an event published before that is in the log the rebuild copied (it committed first), one
published after is read from the stream, and one that is both is skipped by the guard. That
holds as long as the streams keep every entry since the rebuild began (`SHOP_STREAM_MAX_LEN`
entries per partition).

Queries on it meanwhile read what is there (empty at first); `consistentWith` waits for it,
so a token waits until the rebuild's swap (or its timeout).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from redis.exceptions import ResponseError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.redis import RedisClient
from app.config.settings import Settings
from app.events.streams import group_name, stream_key
from app.pipeline.rebuild import rebuild
from app.projections.base import Projection

log = logging.getLogger("app.projections")

CATCHING_UP = "CATCHING_UP"


async def mark_new(engine: AsyncEngine, projections: Sequence[Projection]) -> list[str]:
    """Mark each projection new to this read store CATCHING_UP; the names marked. One
    statement each, so two workers starting together mark it once."""
    marked = []
    async with engine.begin() as connection:
        for projection in projections:
            row = await connection.scalar(
                text(
                    "INSERT INTO projection_state (projection, state) SELECT :name, :state "
                    "WHERE EXISTS (SELECT FROM projection_state WHERE projection <> :name) "
                    f'AND NOT EXISTS (SELECT FROM "{projection.applied.name}") '
                    "ON CONFLICT (projection) DO NOTHING RETURNING projection"
                ),
                {"name": projection.name, "state": CATCHING_UP},
            )
            if row is not None:
                log.warning("%s is new to this read store: building it from the log", row)
                marked.append(row)
    return marked


async def catching_up(engine: AsyncEngine) -> set[str]:
    """The projections waiting for their first build."""
    async with engine.connect() as connection:
        rows = await connection.scalars(
            text("SELECT projection FROM projection_state WHERE state = :state"),
            {"state": CATCHING_UP},
        )
        return set(rows)


class Backfills:
    """The first builds a worker runs, one task per projection."""

    def __init__(
        self, read: AsyncEngine, write: AsyncEngine, redis: RedisClient, settings: Settings
    ) -> None:
        self.read = read
        self.write = write
        self.redis = redis
        self.settings = settings
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, projections: Sequence[Projection]) -> None:
        """Build each of these that is not being built here already."""
        for projection in projections:
            running = self.tasks.get(projection.name)
            if running is None or running.done():
                self.tasks[projection.name] = asyncio.create_task(
                    self._build(projection), name=f"{projection.name}/backfill"
                )

    async def _build(self, projection: Projection) -> None:
        reported = -1

        def progress(done: int, total: int) -> None:
            nonlocal reported
            tenth = 10 * done // total if total else 10
            if tenth > reported:
                reported = tenth
                log.info("building %s from the log: %d of %d events", projection.name, done,
                         total)  # fmt: skip

        try:
            [report] = await rebuild(
                [projection], self.read, self.write, progress, during=CATCHING_UP,
                first=lambda: self._point_groups_at_the_end(projection),
            )  # fmt: skip
        except RuntimeError as error:  # another worker builds it: wait for its swap
            log.info("%s: %s", projection.name, error)
        except Exception:
            log.exception("building %s from the log failed; it will be tried again",
                          projection.name)  # fmt: skip
        else:
            log.warning("%s built from the log (%d events, %.1f s): live", projection.name,
                        report.replayed, report.seconds)  # fmt: skip

    async def _point_groups_at_the_end(self, projection: Projection) -> None:
        group = group_name(projection.name)
        for partition in range(self.settings.stream_partitions):
            stream = stream_key(self.settings.redis_prefix, partition)
            try:
                await self.redis.xgroup_create(stream, group, id="$", mkstream=True)
            except ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise
                await self.redis.xgroup_setid(stream, group, id="$")

    async def stop(self) -> None:
        tasks = [task for task in self.tasks.values() if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=10)
