"""Projector and rebuild speed: each projection alone on a backlog of published events, and
all of them together, as a worker runs them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from benchmarks.harness import Servers, fresh_stores, log
from benchmarks.seed import Dataset, seed


async def _drain(services: Any, loop: Any, done: Any, timeout_s: float = 1800) -> float:
    """Run `loop` until `done()` holds; seconds taken."""
    started = time.perf_counter()
    task = asyncio.create_task(loop.run(services))
    try:
        while not await done():
            if task.done():
                task.result()
            if time.perf_counter() - started > timeout_s:
                raise TimeoutError(f"{loop.name} did not finish in {timeout_s} s")
            await asyncio.sleep(0.05)
        return time.perf_counter() - started
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def run(servers: Servers, orders: int) -> dict[str, Any]:
    from app.adapters.event_log import unpublished
    from app.bootstrap import open_services
    from app.projections.registry import PROJECTIONS
    from app.projections.runner import ProjectionRunner
    from app.projections.status import projection_statuses
    from app.write.relay import OutboxRelay

    async with fresh_stores(servers, "projector") as stores:
        events = await seed(stores.write_url, Dataset.for_orders(orders), published=False)
        settings = stores.settings()
        results: dict[str, Any] = {"events": events, "per_projection": {}}
        async with open_services(settings) as services:

            async def published() -> bool:
                async with services.write_engine.connect() as connection:
                    return await unpublished(connection) == 0

            log(f"projector: relaying {events} events to Redis")
            seconds = await _drain(services, OutboxRelay(), published)
            results["relay_events_per_s"] = events / seconds

            async def caught_up(projections: list[Any]) -> bool:
                statuses = await projection_statuses(
                    services.read_engine, services.redis, settings.redis_prefix,
                    settings.stream_partitions, projections,
                )  # fmt: skip
                return all(s.lag_events == 0 and s.events_applied > 0 for s in statuses)

            for projection in PROJECTIONS:
                log(f"projector: {projection.name} alone on {events} events")
                runner = ProjectionRunner([projection])
                seconds = await _drain(services, runner, lambda p=projection: caught_up([p]))
                results["per_projection"][projection.name] = events / seconds
    return results
