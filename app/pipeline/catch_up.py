"""Read-your-writes: wait until the projections concerned have applied a token's events.

Every wait of a process goes through its one `CatchUpWaiter`. Per projection one task checks
all the waits pending on it with one query, each time the change feed rings for that
projection or a wait arrives (or every half second while any is pending), so a thousand
waits cost what one does. Waits at once are capped; past the cap a wait is refused at once
(WaitLimitReached), never queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from sqlalchemy import any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.postgres import DatabaseUnavailable
from app.events.consistency_token import AggregateVersion
from app.pipeline.cancellation import cancel_and_wait
from app.pipeline.change_feed import ChangeFeed, Watch
from app.projections.base import Projection
from app.projections.names import ProjectionName

# Announcements wake the checks; this slow re-check only covers one lost in transit.
_RECHECK_S = 0.5


@dataclass(frozen=True)
class CaughtUp:
    caught_up: bool
    projections: tuple[ProjectionName, ...]
    waited_ms: int


class WaitLimitReached(RuntimeError):
    """As many waits are in progress as a cap allows: this one is refused."""


class CatchUpCheckFailed(RuntimeError):
    """The check of a projection's progress failed (the cause says why)."""


class WaitSlots:
    """A cap on the waits in progress at once (of a process, a request, a connection)."""

    def __init__(self, limit: int, holder: str) -> None:
        self.limit = limit
        self.holder = holder
        self.taken = 0

    @contextlib.contextmanager
    def take(self) -> Iterator[None]:
        """Hold a slot for the block; WaitLimitReached at once when none is free."""
        if self.taken >= self.limit:
            raise WaitLimitReached(
                f"{self.holder} already waits on {self.limit} consistency tokens, the most "
                "allowed at once; try again when one of those waits ends"
            )
        self.taken += 1
        try:
            yield
        finally:
            self.taken -= 1


def concerned(
    projections: Iterable[Projection], versions: Sequence[AggregateVersion]
) -> list[Projection]:
    """The projections that apply any of the token's event types."""
    types = {event_type for version in versions for event_type in version.event_types}
    return [p for p in projections if p.handled_type_names & types]


def _followed(projection: Projection, versions: Sequence[AggregateVersion]) -> dict[UUID, int]:
    """The versions the projection must reach, by aggregate: those of the aggregates it follows."""
    return {
        v.aggregate_id: v.version
        for v in versions
        if v.aggregate_type in projection.aggregate_types
    }


@dataclass(eq=False)
class _Wait:
    """One caller's wait on one projection."""

    wanted: dict[UUID, int]
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # applied, or a check failed
    checked: asyncio.Event = field(default_factory=asyncio.Event)  # a check has seen it
    applied: bool = False
    error: Exception | None = None


async def _outcome(wait: _Wait, timeout_s: float) -> bool:
    """True once the wait's versions are applied, False when the time is up."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(timeout_s, 0)):
            await wait.settled.wait()
    await wait.checked.wait()  # however short the timeout, one check sees every wait
    if wait.error is not None:
        # A fresh error per caller: one object raised by many would pile up their tracebacks.
        unavailable = isinstance(wait.error, DatabaseUnavailable)
        fresh = DatabaseUnavailable if unavailable else CatchUpCheckFailed
        raise fresh(str(wait.error)) from wait.error
    return wait.applied


class _ProjectionWaits:
    """The waits pending on one projection, checked together by one task."""

    def __init__(self, engine: AsyncEngine, feed: ChangeFeed, projection: Projection) -> None:
        self.engine = engine
        self.feed = feed
        self.projection = projection
        self.waits: set[_Wait] = set()
        self.task: asyncio.Task[None] | None = None
        self.bell: Watch | None = None  # rung by the change feed, and by each new wait

    def add(self, wanted: dict[UUID, int]) -> _Wait:
        wait = _Wait(wanted)
        self.waits.add(wait)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(), name=f"catch-up:{self.projection.name}")
        elif self.bell is not None:
            self.bell.changed.set()  # a check that began before this wait did not see it
        return wait

    async def _run(self) -> None:
        async with self.feed.watch((self.projection.name,)) as bell:
            self.bell = bell
            try:
                while self.waits:
                    bell.changed.clear()
                    if pending := [w for w in self.waits if not w.settled.is_set()]:
                        await self._check(pending)
                    await bell.wait(_RECHECK_S)
                    bell.take()  # which keys changed does not matter: every wait is checked
            finally:
                self.bell = None
                for wait in self.waits:  # cancelled: no check will come
                    wait.checked.set()

    async def _check(self, waits: list[_Wait]) -> None:
        try:
            have = await self._applied({key for wait in waits for key in wait.wanted})
        except Exception as error:  # each caller hears of it, as from its own query
            for wait in waits:
                wait.error = error
                wait.settled.set()
                wait.checked.set()
            return
        for wait in waits:
            if all(have.get(key, 0) >= version for key, version in wait.wanted.items()):
                wait.applied = True
                wait.settled.set()
            wait.checked.set()

    async def _applied(self, aggregate_ids: set[UUID]) -> dict[UUID, int]:
        """The projection's guard: the version applied, by aggregate (one array parameter,
        however many aggregates)."""
        applied = self.projection.applied
        ids = bindparam("ids", list(aggregate_ids), type_=ARRAY(applied.c.aggregate_id.type))
        query = select(applied.c.aggregate_id, applied.c.version).where(
            applied.c.aggregate_id == any_(ids)
        )
        async with self.engine.connect() as connection:
            rows = await connection.execute(query)
            return {row.aggregate_id: row.version for row in rows}


class CatchUpWaiter:
    """The waits of one process for projections to apply given aggregate versions."""

    def __init__(self, engine: AsyncEngine, feed: ChangeFeed, max_waits: int) -> None:
        self.engine = engine
        self.feed = feed
        self.slots = WaitSlots(max_waits, "this server")
        self.by_projection: dict[ProjectionName, _ProjectionWaits] = {}

    async def wait(
        self,
        versions: Sequence[AggregateVersion],
        projections: Iterable[Projection],
        timeout_s: float,
    ) -> CaughtUp:
        """Wait (at most `timeout_s`, and at least for one check) until the concerned
        projections among `projections` have applied the versions; WaitLimitReached at once
        when the process already waits as much as it may."""
        started = time.monotonic()
        waiting_on = concerned(projections, versions)
        caught_up = True
        with self.slots.take(), self._registered(waiting_on, versions) as waits:
            for wait in waits:  # registered at once, so they share the deadline
                if not await _outcome(wait, timeout_s - (time.monotonic() - started)):
                    caught_up = False
                    break
        waited_ms = int((time.monotonic() - started) * 1000)
        return CaughtUp(caught_up, tuple(p.name for p in waiting_on), waited_ms)

    @contextlib.contextmanager
    def _registered(
        self, projections: list[Projection], versions: Sequence[AggregateVersion]
    ) -> Iterator[list[_Wait]]:
        """A wait on each projection that follows any of the versions' aggregates."""
        registered: list[tuple[_ProjectionWaits, _Wait]] = []
        try:
            for projection in projections:
                if wanted := _followed(projection, versions):
                    group = self._waits_on(projection)
                    registered.append((group, group.add(wanted)))
            yield [wait for _, wait in registered]
        finally:
            for group, wait in registered:
                group.waits.discard(wait)
                if not group.waits and group.bell is not None:
                    group.bell.changed.set()  # the check task ends now, not at its next round

    def _waits_on(self, projection: Projection) -> _ProjectionWaits:
        group = self.by_projection.get(projection.name)
        if group is None:
            group = _ProjectionWaits(self.engine, self.feed, projection)
            self.by_projection[projection.name] = group
        return group

    async def close(self) -> None:
        """Stop the checks (at shutdown)."""
        for group in self.by_projection.values():
            if group.task is not None:
                await cancel_and_wait(group.task)
