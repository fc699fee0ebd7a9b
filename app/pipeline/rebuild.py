"""Rebuild projections from the event log without downtime.

The log is folded into shadow copies of the projection's tables (and guard) in a schema of
their own, while the live tables keep serving and the live consumers keep applying. Then,
in one transaction that briefly holds the live appliers off (queries still read), the shadow
catches up with every aggregate the live guard is ahead on, and the tables are swapped.
Nothing is missed at the swap: an event either reached the live guard (and was caught up
from the log) or has not been applied yet and will be applied to the new tables.

The fold runs inside PostgreSQL: the log is copied into the read store a slice at a time
(app.pipeline.staged_log) and each projection's SQL fold reads the slice as its relation of
events, the same statement that applies a live batch. Several projections rebuild in one pass:
each slice is copied once and folded into every shadow at the same time, while the next slice
is copied. No event is decoded in Python, except the few caught up at the swap.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.adapters.postgres import retry_lost_races
from app.events.serialization import from_stream_fields
from app.pipeline import event_log
from app.pipeline.applier import Delivery, apply_batch
from app.pipeline.cancellation import cancel_and_wait, reraise_if_cancelling
from app.pipeline.consumer import is_transient
from app.pipeline.staged_log import Params, StagedLog, UnreadableEvent
from app.projections.base import Projection
from app.projections.tables import projection_state

log = logging.getLogger("app.projections")

Progress = Callable[[int, int], None]  # (events replayed, events in the log)
_SLICE = 100_000  # events staged and folded at a time
_WORK_MEM = "64MB"  # per folding connection, one per projection
_MAINTENANCE_WORK_MEM = "256MB"  # per index-building connection
_REBUILD_LOCK = 0x5E0_2000


class RebuildFailed(Exception):
    """An event of the log that the projection cannot apply. The rebuild stops before its
    swap, so the live tables go on as they were; fix the cause and rebuild again."""


@dataclass(frozen=True)
class RebuildReport:
    projection: str
    replayed: int
    caught_up: int
    seconds: float


def _first_line(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def _deliveries(logged: Sequence[event_log.LoggedEvent]) -> list[Delivery]:
    return [Delivery(f"log:{e.position}", e.fields, from_stream_fields(e.fields)) for e in logged]


class _Shadow:
    """One projection's shadow tables: made, filled, caught up and swapped in."""

    def __init__(self, projection: Projection, read: AsyncEngine, write: AsyncEngine) -> None:
        self.projection = projection
        self.read = read
        self.write = write
        self.shadow = f"rebuild_{projection.name}"
        self.retired = f"retired_{projection.name}"
        self.replayed = 0

    @property
    def lock_key(self) -> int:
        return _REBUILD_LOCK + zlib.crc32(self.projection.name.encode()) % 1000

    async def set_state(self, state: str) -> None:
        async with self.read.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO projection_state (projection, state) VALUES (:p, :s) "
                    "ON CONFLICT (projection) DO UPDATE SET state = :s"
                ),
                {"p": self.projection.name, "s": state},
            )

    async def create(self) -> None:
        async with self.read.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA IF EXISTS "{self.shadow}" CASCADE'))
            await connection.execute(text(f'CREATE SCHEMA "{self.shadow}"'))
            for table in self.projection.all_tables:
                # Without its secondary indexes, built once the table is full (build_indexes):
                # one sort each is cheaper than keeping them up to date row by row. The
                # primary key stays: the folds' upserts find their rows by it.
                key = ", ".join(f'"{column.name}"' for column in table.primary_key.columns)
                await connection.execute(
                    text(f'CREATE TABLE "{self.shadow}"."{table.name}" '
                         f'(LIKE "{table.name}" INCLUDING ALL EXCLUDING INDEXES)')
                )  # fmt: skip
                await connection.execute(
                    text(f'ALTER TABLE "{self.shadow}"."{table.name}" ADD PRIMARY KEY ({key})')
                )

    async def fold(self, log: StagedLog, first: int, last: int) -> None:
        """Fold the staged events at positions (first, last] into the shadow, in one
        transaction; name the first event that cannot be applied if the fold fails."""
        params = {"first": first, "last": last}
        async with self.read.begin() as connection:
            await connection.execute(text(f'SET LOCAL search_path TO "{self.shadow}", public'))
            # A slice's sorts and groupings fit in memory rather than spilling to disk.
            await connection.execute(text(f"SET LOCAL work_mem = '{_WORK_MEM}'"))
            try:
                async with connection.begin_nested():
                    await self._fold(connection, log, params)
            except Exception as error:
                reraise_if_cancelling()
                if is_transient(error):
                    raise
                raise await self._culprit(connection, log, params, error) from error

    async def _fold(self, connection: AsyncConnection, log: StagedLog, params: Params) -> None:
        await connection.execute(log.statements(self.projection).fold, params)

    async def fill_guard(self, log: StagedLog) -> None:
        """The guard, once every slice is folded: one bulk insert, not an upsert a slice."""
        async with self.read.begin() as connection:
            await connection.execute(text(f'SET LOCAL search_path TO "{self.shadow}", public'))
            await connection.execute(text(f"SET LOCAL work_mem = '{_WORK_MEM}'"))
            guard = log.statements(self.projection).guard
            self.replayed = int(await connection.scalar(guard) or 0)

    async def _culprit(
        self, connection: AsyncConnection, log: StagedLog, params: Params, error: Exception
    ) -> RebuildFailed:
        """Bisect the failed slice: fold what comes before a point, keep it if it applies,
        until one event is left that fails after everything before it."""
        handled = list(self.projection.handled_type_names)
        positions = list(await connection.scalars(
            text(f"SELECT position FROM {log.table} WHERE position > :first "
                 "AND position <= :last AND event_type = ANY(:handled) ORDER BY position"),
            {**params, "handled": handled},
        ))  # fmt: skip
        done, failing = params["first"], len(positions)  # positions[:failing] hold the culprit
        start = 0
        while failing - start > 1:
            middle = (start + failing) // 2
            try:
                async with connection.begin_nested():
                    await self._fold(
                        connection, log, {"first": done, "last": positions[middle - 1]}
                    )
                done, start = positions[middle - 1], middle
            except Exception as failure:
                reraise_if_cancelling()
                if is_transient(failure):
                    raise
                error, failing = failure, middle
        if not positions:
            return RebuildFailed(f"{self.projection.name}: {_first_line(error)}")
        row = (await connection.execute(
            text(f"SELECT event_type, aggregate_id, aggregate_version FROM {log.table} "
                 "WHERE position = :position"),
            {"position": positions[start]},
        )).one()  # fmt: skip
        return RebuildFailed(
            f"{self.projection.name} cannot apply {row.event_type} {row.aggregate_id} "
            f"v{row.aggregate_version} (event log position {positions[start]}): "
            f"{_first_line(error)}"
        )

    async def _apply(self, connection: AsyncConnection, deliveries: list[Delivery]) -> int:
        await connection.execute(text(f'SET LOCAL search_path TO "{self.shadow}", public'))
        # The log is replayed as it is, in order: a gap in it is not a delivery race.
        result = await apply_batch(
            connection, self.projection, deliveries, track_progress=False, allow_gaps=True
        )
        await connection.execute(text("SET LOCAL search_path TO DEFAULT"))
        return result.applied

    async def build_indexes(self) -> None:
        """The live tables' other indexes, under their own names, on the filled shadow."""
        async with self.read.begin() as connection:
            await connection.execute(
                text(f"SET LOCAL maintenance_work_mem = '{_MAINTENANCE_WORK_MEM}'")
            )
            for table in self.projection.all_tables:
                definitions = await connection.scalars(
                    text(
                        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
                        "WHERE i.indrelid = to_regclass(:table) AND NOT i.indisprimary "
                        "ORDER BY i.indexrelid"
                    ),
                    {"table": f'public."{table.name}"'},
                )
                live = f" ON public.{table.name} USING "  # as pg_get_indexdef prints it
                for definition in list(definitions):
                    if live not in definition:
                        raise RuntimeError(f"cannot copy index {definition!r} to the shadow")
                    shadow = definition.replace(live, f' ON "{self.shadow}".{table.name} USING ')
                    await connection.execute(text(shadow))

    async def vacuum_analyze(self, autocommit: AsyncConnection) -> None:
        """Give the filled tables the planner's statistics and their visibility maps before
        they go live: with neither, PostgreSQL guesses a read table's row counts (and plans
        each compiled query again on every run, or plans it badly) and counts rows from the
        heap, until autovacuum comes by, if it is on at all."""
        for table in self.projection.all_tables:
            await autocommit.execute(text(f'VACUUM (ANALYZE) "{self.shadow}"."{table.name}"'))

    async def swap(self) -> int:
        """Catch the shadow up and put it in the live tables' place. Statements of live
        appliers prepared before the swap lock the old tables by identity, one at a time,
        while the swap and the drop lock them all: a deadlock either side may lose, and
        then does its part again (all of it rolled back)."""
        caught_up = await retry_lost_races(self._swap, f"swapping {self.projection.name}")
        await retry_lost_races(self._drop, f"dropping {self.projection.name}'s old tables")
        return caught_up

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
        return caught_up

    async def _drop(self) -> None:
        async with self.read.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA "{self.retired}" CASCADE'))
            await connection.execute(text(f'DROP SCHEMA "{self.shadow}" CASCADE'))

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
        return await self._apply(connection, _deliveries(missing))


async def rebuild(
    projections: Sequence[Projection],
    read: AsyncEngine,
    write: AsyncEngine,
    progress: Progress,
    *,
    during: str = "REBUILDING",
    first: Callable[[], Awaitable[None]] | None = None,
) -> list[RebuildReport]:
    """Rebuild these projections in one pass over the log; one report each.

    `during`: the state they show until the swap makes them LIVE. REBUILDING (an operator's
    rebuild: the live tables serve meanwhile, and stay LIVE if it fails) or CATCHING_UP (a
    projection new to a running system, app/pipeline/backfill.py: nothing to serve yet, and
    it stays CATCHING_UP if this fails, to be built again). `first`: run once the rebuild
    holds its locks, before the log is read."""
    started = time.monotonic()
    shadows = [_Shadow(p, read, write) for p in projections]
    async with read.connect() as lock:
        lock = await lock.execution_options(isolation_level="AUTOCOMMIT")
        for shadow in shadows:
            if not await lock.scalar(select(func.pg_try_advisory_lock(shadow.lock_key))):
                raise RuntimeError(f"a rebuild of {shadow.projection.name} is already running")
        for shadow in shadows:
            await shadow.set_state(during)
        try:
            if first is not None:
                await first()
            for shadow in shadows:
                await shadow.create()
            await _replay(shadows, read, write, progress)
            await _all([shadow.build_indexes() for shadow in shadows])
            for shadow in shadows:
                await shadow.vacuum_analyze(lock)
            caught_up = [await shadow.swap() for shadow in shadows]
        except BaseException:
            for shadow in shadows:
                await shadow.set_state("LIVE" if during == "REBUILDING" else during)
            raise
        finally:
            await lock.execute(select(func.pg_advisory_unlock_all()))
    seconds = time.monotonic() - started
    reports = [
        RebuildReport(s.projection.name, s.replayed, n, seconds)
        for s, n in zip(shadows, caught_up, strict=True)
    ]
    for report in reports:
        log.info("rebuilt %s: %d events replayed, %d caught up at the swap, %.1f s",
                 report.projection, report.replayed, report.caught_up, report.seconds)  # fmt: skip
    return reports


async def _replay(
    shadows: Sequence[_Shadow], read: AsyncEngine, write: AsyncEngine, progress: Progress
) -> int:
    """Stage the log in the read store a slice at a time and fold each slice into every
    shadow at once, while the next slice is copied."""
    types = set().union(*(s.projection.aggregate_types for s in shadows))
    staged = StagedLog(shadows[0].shadow, types, _SLICE)
    async with write.connect() as source:
        total = await event_log.count(source, sorted(types))
    progress(0, total)
    async with read.begin() as connection:
        await staged.create(connection)
    slices = staged.slices(write, read)
    done = 0
    try:
        part = await anext(slices, None)
        while part is not None:
            ahead = asyncio.create_task(anext(slices, None))
            try:
                await _all([shadow.fold(staged, part.first, part.last) for shadow in shadows])
            except BaseException:
                await cancel_and_wait(ahead)
                raise
            done += part.events
            progress(done, max(total, done))
            part = await ahead
        async with read.begin() as connection:
            await connection.execute(text(f"SET LOCAL work_mem = '{_WORK_MEM}'"))
            await staged.summarize(connection)
        await _all([shadow.fill_guard(staged) for shadow in shadows])
    except UnreadableEvent as error:
        raise RebuildFailed(str(error)) from error
    finally:
        await slices.aclose()
        async with read.begin() as connection:
            await staged.drop(connection)
    return done


async def _all(work: Sequence[Coroutine[Any, Any, None]]) -> None:
    """Run these together; if one fails, cancel the rest and raise its error."""
    tasks = [asyncio.create_task(coroutine) for coroutine in work]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
