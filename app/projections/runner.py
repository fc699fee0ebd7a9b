"""The projection runner: a worker loop that keeps about its share of the leases and consumes
each leased (projection, partition) in a task of its own."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import uuid
from collections.abc import Sequence

from app.projections.base import Projection
from app.projections.consumer import PartitionConsumer
from app.projections.leases import Leases, Unit
from app.services import Services

log = logging.getLogger("app.projections")


class ProjectionRunner:
    """A background loop (see app.worker) running every projection's consumers it holds."""

    name = "projection-runner"

    def __init__(self, projections: Sequence[Projection]) -> None:
        self.projections = {p.name: p for p in projections}
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.tasks: dict[Unit, asyncio.Task[None]] = {}

    def units(self, partitions: int) -> list[Unit]:
        return [Unit(name, p) for name in self.projections for p in range(partitions)]

    async def run(self, services: Services) -> None:
        settings = services.settings
        leases = Leases(services.redis, settings.redis_prefix, self.worker_id, settings.lease_ttl_s)
        units = self.units(settings.stream_partitions)
        try:
            while True:
                workers = await leases.heartbeat()
                share = leases.fair_share(len(units), workers)
                await self._keep(leases)
                await self._shed(leases, share)
                await self._take(leases, units, share, services)
                await asyncio.sleep(settings.lease_ttl_s / 3)
        finally:
            await self._stop_all(leases)

    async def _keep(self, leases: Leases) -> None:
        """Renew what we hold; stop consuming what we lost (or whose task ended)."""
        for unit, task in list(self.tasks.items()):
            if task.done():
                self._report_end(unit, task)
                await self._stop(unit, leases)
            elif not await leases.renew(unit):
                log.warning("lost the lease on %s/%d", unit.projection, unit.partition)
                await self._stop(unit, leases, release=False)

    async def _shed(self, leases: Leases, share: int) -> None:
        """Give back leases beyond our fair share, so a newly started worker gets some."""
        for unit in sorted(self.tasks)[share:]:
            await self._stop(unit, leases)

    async def _take(
        self, leases: Leases, units: list[Unit], share: int, services: Services
    ) -> None:
        free = [unit for unit in units if unit not in self.tasks]
        random.shuffle(free)  # workers starting together spread over different units
        for unit in free:
            if len(self.tasks) >= share:
                return
            if await leases.acquire(unit):
                consumer = PartitionConsumer(
                    self.projections[unit.projection], unit, self.worker_id, services.settings,
                    services.redis, services.read_engine,
                )  # fmt: skip
                self.tasks[unit] = asyncio.create_task(
                    consumer.run(), name=f"{unit.projection}/{unit.partition}"
                )

    async def _stop(self, unit: Unit, leases: Leases, *, release: bool = True) -> None:
        task = self.tasks.pop(unit)
        task.cancel()
        _, still_running = await asyncio.wait([task], timeout=10)
        if still_running:  # never let one stuck consumer hold a shutdown
            log.error("consumer %s/%d did not stop within 10 s", unit.projection, unit.partition)
        if release:
            await leases.release(unit)

    async def _stop_all(self, leases: Leases) -> None:
        """Stop every consumer at once; give leases back if Redis answers quickly.

        Shutdown must not wait on Redis: unreleased leases simply expire.
        """
        units, tasks = list(self.tasks), list(self.tasks.values())
        self.tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            _, still_running = await asyncio.wait(tasks, timeout=5)
            if still_running:
                log.error("%d consumers did not stop within 5 s", len(still_running))
        try:
            async with asyncio.timeout(2):
                for unit in units:
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
