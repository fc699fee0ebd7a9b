"""Rebuild a projection from the event log without downtime.

The log is replayed into shadow copies of the projection's tables (and guard) in a schema of
their own, while the live tables keep serving and the live consumers keep applying. Then,
in one transaction that briefly holds the live appliers off (queries still read), the shadow
catches up with every aggregate the live guard is ahead on, and the tables are swapped.
Nothing is missed at the swap: an event either reached the live guard (and was caught up
from the log) or has not been applied yet and will be applied to the new tables.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.adapters import event_log
from app.events.serialization import from_stream_fields
from app.projections.applier import Delivery, apply_batch
from app.projections.base import Projection
from app.projections.tables import projection_state

log = logging.getLogger("app.projections")

Progress = Callable[[int, int], None]  # (events replayed, events in the log)
_BATCH = 5000
_REBUILD_LOCK = 0x5E0_2000


@dataclass(frozen=True)
class RebuildReport:
    projection: str
    replayed: int
    caught_up: int
    seconds: float


def _deliveries(logged: Sequence[event_log.LoggedEvent]) -> list[Delivery]:
    return [Delivery(f"log:{e.position}", e.fields, from_stream_fields(e.fields)) for e in logged]


class Rebuild:
    """One rebuild of one projection; `run` does it all."""

    def __init__(
        self, projection: Projection, read: AsyncEngine, write: AsyncEngine, progress: Progress
    ) -> None:
        self.projection = projection
        self.read = read
        self.write = write
        self.progress = progress
        self.shadow = f"rebuild_{projection.name}"
        self.retired = f"retired_{projection.name}"

    async def run(self) -> RebuildReport:
        started = time.monotonic()
        async with self.read.connect() as lock:
            lock = await lock.execution_options(isolation_level="AUTOCOMMIT")
            key = _REBUILD_LOCK + zlib.crc32(self.projection.name.encode()) % 1000
            if not await lock.scalar(select(func.pg_try_advisory_lock(key))):
                raise RuntimeError(f"a rebuild of {self.projection.name} is already running")
            await self._set_state("REBUILDING")
            try:
                await self._create_shadow()
                replayed = await self._replay()
                caught_up = await self._swap()
            except BaseException:
                await self._set_state("LIVE")
                raise
        report = RebuildReport(
            self.projection.name, replayed, caught_up, time.monotonic() - started
        )
        log.info("rebuilt %s: %d events replayed, %d caught up at the swap, %.1f s",
                 report.projection, report.replayed, report.caught_up, report.seconds)  # fmt: skip
        return report

    async def _set_state(self, state: str) -> None:
        async with self.read.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO projection_state (projection, state) VALUES (:p, :s) "
                    "ON CONFLICT (projection) DO UPDATE SET state = :s"
                ),
                {"p": self.projection.name, "s": state},
            )

    async def _create_shadow(self) -> None:
        async with self.read.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA IF EXISTS "{self.shadow}" CASCADE'))
            await connection.execute(text(f'CREATE SCHEMA "{self.shadow}"'))
            for table in self.projection.all_tables:
                await connection.execute(
                    text(f'CREATE TABLE "{self.shadow}"."{table.name}" '
                         f'(LIKE "{table.name}" INCLUDING ALL)')
                )  # fmt: skip

    async def _apply_to_shadow(
        self, connection: AsyncConnection, deliveries: list[Delivery]
    ) -> int:
        await connection.execute(text(f'SET LOCAL search_path TO "{self.shadow}", public'))
        result = await apply_batch(connection, self.projection, deliveries, track_progress=False)
        await connection.execute(text("SET LOCAL search_path TO DEFAULT"))
        return result.applied

    async def _replay(self) -> int:
        types = sorted(self.projection.aggregate_types)
        async with self.write.connect() as source:
            total = await event_log.count(source, types)
            position, done = 0, 0
            self.progress(0, total)
            while batch := await event_log.read_after(source, position, _BATCH, types):
                async with self.read.begin() as target:
                    await self._apply_to_shadow(target, _deliveries(batch))
                position = batch[-1].position
                done += len(batch)
                self.progress(done, max(total, done))
        return done

    async def _swap(self) -> int:
        applied = self.projection.applied.name
        async with self.read.begin() as connection:
            # Holds live appliers off (they lock guard rows); plain reads go on.
            await connection.execute(text(f'LOCK TABLE "{applied}" IN EXCLUSIVE MODE'))
            caught_up = await self._catch_up(connection)
            await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.retired}"'))
            for table in self.projection.all_tables:
                await connection.execute(
                    text(f'ALTER TABLE "{table.name}" SET SCHEMA "{self.retired}"')
                )
                await connection.execute(
                    text(f'ALTER TABLE "{self.shadow}"."{table.name}" SET SCHEMA public')
                )
            await connection.execute(
                update(projection_state)
                .where(projection_state.c.projection == self.projection.name)
                .values(state="LIVE")
            )
        async with self.read.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA "{self.retired}" CASCADE'))
            await connection.execute(text(f'DROP SCHEMA "{self.shadow}" CASCADE'))
        return caught_up

    async def _catch_up(self, connection: AsyncConnection) -> int:
        """Replay into the shadow every event the live guard has and the shadow lacks."""
        applied = self.projection.applied.name
        rows = await connection.execute(
            text(
                f'SELECT l.aggregate_id, coalesce(s.version, 0) AS version FROM "{applied}" l '
                f'LEFT JOIN "{self.shadow}"."{applied}" s USING (aggregate_id) '
                "WHERE s.version IS NULL OR s.version < l.version"
            )
        )
        behind: dict[UUID, int] = {row.aggregate_id: row.version for row in rows}
        if not behind:
            return 0
        async with self.write.connect() as source:
            missing = await event_log.read_aggregates(source, behind)
        return await self._apply_to_shadow(connection, _deliveries(missing))
