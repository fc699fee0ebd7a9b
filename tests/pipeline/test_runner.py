"""The projection runner gives a lease back only once its consumer has ended, and never lets
a slow one hold up the renewal of the others (which would let them lapse while they run)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from app.pipeline.leases import Leases, Unit
from app.pipeline.runner import ProjectionRunner
from app.projections.registry import PROJECTIONS
from app.runtime.bootstrap import Stores


class SlowToStopRunner(ProjectionRunner):
    """Its consumers, once cancelled, end only when the test lets them: like a consumer stuck
    in a call that does not give way to cancellation."""

    def __init__(self, stores: Stores) -> None:
        super().__init__(PROJECTIONS, stores.read_engine, stores.redis, stores.settings)
        self.let_go = asyncio.Event()

    def consume(self, unit: Unit) -> Coroutine[Any, Any, None]:
        return self._linger()

    async def _linger(self) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await self.let_go.wait()
            raise


async def until(condition: Callable[[], Awaitable[bool]], timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_a_consumer_slow_to_stop_keeps_its_lease_and_the_others_stay_renewed(
    stores: Stores,
) -> None:
    settings = stores.settings
    runner = SlowToStopRunner(stores)
    mine = Leases(stores.redis, settings.redis_prefix, runner.worker_id, settings.lease_ttl_s)
    other = Leases(stores.redis, settings.redis_prefix, "other-worker", settings.lease_ttl_s)
    units = runner.units(settings.stream_partitions)

    async def holders() -> dict[Unit, str | None]:
        return {unit: await mine.holder(unit) for unit in units}

    async def holds_all() -> bool:
        return set((await holders()).values()) == {runner.worker_id}

    async def shedding() -> bool:
        return len(runner.tasks) < len(units)

    async def given_back() -> bool:
        return all([await mine.holder(unit) is None for unit in shed])

    shed: set[Unit] = set()
    task = asyncio.create_task(runner.run())
    try:
        await until(holds_all)
        assert len(runner.tasks) == len(units)

        # A second worker appears: the runner sheds half its units, whose consumers linger.
        await other.heartbeat()
        await until(shedding)
        shed = set(units) - set(runner.tasks)
        assert len(shed) == len(units) - mine.fair_share(len(units), 2)

        # Well past the lease time, every lease is still ours: the kept ones because waiting
        # on the lingering consumers does not stop their renewal, the shed ones because their
        # consumers have not ended. The other worker can take none of them.
        deadline = time.monotonic() + 2.5 * settings.lease_ttl_s
        while time.monotonic() < deadline:
            await other.heartbeat()
            assert await holds_all(), await holders()
            assert not any([await other.acquire(unit) for unit in shed])
            await asyncio.sleep(0.5)
        assert set(runner.tasks) == set(units) - shed

        # Once they end, their leases are given back and the other worker takes them.
        runner.let_go.set()
        await until(given_back)
        assert all([await other.acquire(unit) for unit in shed])
        assert set(runner.tasks) == set(units) - shed
    finally:
        runner.let_go.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # Stopped, it gives back what it held.
    assert {unit for unit, holder in (await holders()).items() if holder is None} == (
        set(units) - shed
    )
