"""Background loops (the outbox relay and the projectors), supervised and stopped cleanly."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

from app.pipeline.cancellation import reraise_if_cancelling, where_stuck
from app.pipeline.relay import OutboxRelay
from app.pipeline.runner import ProjectionRunner
from app.projections.registry import PROJECTIONS
from app.runtime.bootstrap import Stores

log = logging.getLogger("app.runtime.worker")

_HEALTHY_S = 60.0
_MAX_BACKOFF_S = 30.0
_STOP_TIMEOUT_S = 15.0


class BackgroundLoop(Protocol):
    """A loop that runs until cancelled."""

    name: str

    async def run(self) -> None: ...


def pipeline_loops(stores: Stores) -> list[BackgroundLoop]:
    """The loops a worker runs: the outbox relay and the projection runner."""
    return [
        OutboxRelay(stores.write_engine, stores.redis, stores.settings),
        ProjectionRunner(
            PROJECTIONS, stores.read_engine, stores.redis, stores.settings, stores.write_engine
        ),
    ]


async def supervise(loop: BackgroundLoop, first_backoff_s: float = 0.5) -> None:
    """Run a loop; if it fails, log it and start it again after a growing pause."""
    backoff = first_backoff_s
    while True:
        started = time.monotonic()
        try:
            await loop.run()
            log.warning("loop %s returned; starting it again", loop.name)
        except asyncio.CancelledError:
            raise
        except Exception:
            reraise_if_cancelling()
            if time.monotonic() - started > _HEALTHY_S:
                backoff = first_backoff_s  # it ran well for a while: a new outage, not the old
            log.exception("loop %s failed; restarting in %.1f s", loop.name, backoff)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, _MAX_BACKOFF_S)


@asynccontextmanager
async def running_loops(
    loops: Sequence[BackgroundLoop],
) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Run the loops in the background for the duration of the block, then cancel them."""
    tasks = [asyncio.create_task(supervise(loop), name=loop.name) for loop in loops]
    log.info("worker loops running: %s", ", ".join(loop.name for loop in loops) or "none")
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        _, stuck = await asyncio.wait(tasks, timeout=_STOP_TIMEOUT_S) if tasks else ((), ())
        for task in stuck:  # say where, rather than hold the shutdown forever
            log.error("loop %s did not stop in %.0f s; leaving it:\n%s", task.get_name(),
                      _STOP_TIMEOUT_S, where_stuck(task))  # fmt: skip
        log.info("worker loops stopped")
