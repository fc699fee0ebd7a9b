"""The projection runner: a worker loop that keeps about its share of the leases and consumes
each leased (projection, partition) in a task of its own."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.redis import RedisClient
from app.config.settings import Settings
from app.events.streams import changes_channel
from app.pipeline.backfill import Backfills, catching_up, mark_new
from app.pipeline.cancellation import where_stuck
from app.pipeline.consumer import PartitionConsumer
from app.pipeline.leases import Leases, Unit
from app.pipeline.shared_acks import SharedAcks
from app.pipeline.shared_batches import SharedBatches
from app.pipeline.shared_reads import SharedReads
from app.projections.base import Projection

log = logging.getLogger("app.projections")

STOP_GRACE_S = 10.0
"""How long a cancelled consumer may take to end before the runner says it is stuck."""


@dataclass
class _Stopping:
    """A cancelled consumer that has not ended yet."""

    task: asyncio.Task[None]
    since: float
    reported: bool = False


class ProjectionRunner:
    """A background loop (see app.runtime.worker) running every projection's consumers it holds.

    The loop never waits on a consumer. A cancelled one goes to `stopping` and keeps its lease,
    renewed with the others, until it has ended: only then is the lease given back, so no
    other worker starts on a partition this one may still be writing. (Should two consumers
    meet anyway, after a lost lease, the applier's version check keeps the read model right.)
    """

    name = "projection-runner"

    def __init__(
        self,
        projections: Sequence[Projection],
        read_engine: AsyncEngine,
        redis: RedisClient,
        settings: Settings,
        write_engine: AsyncEngine | None = None,
    ) -> None:
        self.projections = {p.name: p for p in projections}
        # Projections new to the read store are built from the log first (backfill.py): by
        # this worker if it has the write store (the log), else by another.
        self.backfills = (
            Backfills(read_engine, write_engine, redis, settings) if write_engine else None
        )
        self.waiting: set[str] = set()  # CATCHING_UP: no partition of theirs is taken
        # This worker's consumers apply their batches together (group commit).
        self.batches = SharedBatches(read_engine)
        # And acknowledge together, one script call per partition (shared_acks.py).
        self.acks = SharedAcks(redis, changes_channel(settings.redis_prefix))
        # And read new entries together, one call per projection (shared_reads.py); on a
        # Cluster one call cannot span partitions (slots).
        self.reads = SharedReads(redis, together=not settings.redis_cluster)
        self.read_engine = read_engine
        self.redis = redis
        self.settings = settings
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.tasks: dict[Unit, asyncio.Task[None]] = {}
        self.stopping: dict[Unit, _Stopping] = {}

    def units(self, partitions: int) -> list[Unit]:
        return [Unit(name, p) for name in self.projections for p in range(partitions)]

    def consume(self, unit: Unit) -> Coroutine[Any, Any, None]:
        """What runs while this worker holds the unit's lease."""
        return PartitionConsumer(
            self.projections[unit.projection], unit, self.worker_id, self.settings,
            self.redis, self.read_engine, self.batches, self.acks, self.reads,
        ).run()  # fmt: skip

    async def run(self) -> None:
        settings = self.settings
        leases = Leases(self.redis, settings.redis_prefix, self.worker_id, settings.lease_ttl_s)
        units = self.units(settings.stream_partitions)
        if self.backfills is not None:
            await mark_new(self.read_engine, list(self.projections.values()))
        try:
            while True:
                await self.step(leases, units)
                await asyncio.sleep(settings.lease_ttl_s / 3)
        finally:
            if self.backfills is not None:
                await self.backfills.stop()
            await self._stop_all(leases)

    async def step(self, leases: Leases, units: list[Unit]) -> None:
        """One round: renew, give back what is over our share or ended, take what is free;
        build what waits for its first build."""
        waiting = await catching_up(self.read_engine)
        self.waiting = {name for name in self.projections if name in waiting}
        if self.waiting and self.backfills is not None:
            self.backfills.start([p for name, p in self.projections.items() if name in waiting])
        workers = await leases.heartbeat()
        share = leases.fair_share(len(units), workers)
        await self._keep(leases)
        self._shed(share)
        await self._settle(leases, wait_s=1.0)
        await self._take(leases, units, share)

    async def _keep(self, leases: Leases) -> None:
        """Renew every lease held, stopping ones included; stop what we lost or what ended."""
        for unit, task in list(self.tasks.items()):
            if task.done():
                self._report_end(unit, task)
                self._stop(unit)
            elif not await leases.renew(unit):
                log.warning("lost the lease on %s/%d", unit.projection, unit.partition)
                self._stop(unit)
        for unit, stopping in list(self.stopping.items()):
            if not await leases.renew(unit) and not stopping.task.done():
                log.warning(
                    "lost the lease on %s/%d while its consumer is still stopping",
                    unit.projection,
                    unit.partition,
                )

    def _shed(self, share: int) -> None:
        """Give back leases beyond our fair share, so a newly started worker gets some."""
        for unit in sorted(self.tasks)[share:]:
            self._stop(unit)

    def _stop(self, unit: Unit) -> None:
        task = self.tasks.pop(unit)
        task.cancel()
        self.stopping[unit] = _Stopping(task, time.monotonic())

    async def _settle(self, leases: Leases, *, wait_s: float) -> None:
        """Give back the leases of consumers that have ended; wait a little for the others."""
        pending = [s.task for s in self.stopping.values() if not s.task.done()]
        if pending:
            await asyncio.wait(pending, timeout=wait_s)
        now = time.monotonic()
        for unit, stopping in list(self.stopping.items()):
            if stopping.task.done():
                del self.stopping[unit]
                await leases.release(unit)
            elif now - stopping.since > STOP_GRACE_S and not stopping.reported:
                stopping.reported = True
                log.error(
                    "consumer %s/%d has not stopped %.0f s after it was cancelled; its lease"
                    " is kept until it does:\n%s",
                    unit.projection, unit.partition, now - stopping.since,
                    where_stuck(stopping.task),
                )  # fmt: skip

    async def _take(self, leases: Leases, units: list[Unit], share: int) -> None:
        free = [
            unit for unit in units
            if unit not in self.tasks and unit not in self.stopping
            and unit.projection not in self.waiting
        ]  # fmt: skip
        random.shuffle(free)  # workers starting together spread over different units
        for unit in free:
            if len(self.tasks) >= share:
                return
            if await leases.acquire(unit):
                self.tasks[unit] = asyncio.create_task(
                    self.consume(unit), name=f"{unit.projection}/{unit.partition}"
                )

    async def _stop_all(self, leases: Leases) -> None:
        """Stop every consumer at once; give leases back if Redis answers quickly.

        Shutdown must not wait on Redis or a stuck consumer: unreleased leases simply expire.
        """
        for unit in list(self.tasks):
            self._stop(unit)
        stopping = dict(self.stopping)
        self.stopping.clear()
        tasks = [s.task for s in stopping.values()]
        if tasks:
            _, still_running = await asyncio.wait(tasks, timeout=5)
            if still_running:
                log.error("%d consumers did not stop within 5 s", len(still_running))
        try:
            async with asyncio.timeout(2):
                for unit, s in stopping.items():
                    if s.task.done():
                        await leases.release(unit)
                await leases.leave()
        except Exception:
            log.debug("could not give the leases back; they will expire", exc_info=True)

    def _report_end(self, unit: Unit, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "consumer %s/%d failed; it will be restarted",
                unit.projection,
                unit.partition,
                exc_info=task.exception(),
            )
