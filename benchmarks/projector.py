"""Projector speed: each projection alone on a backlog of published events, as a worker runs
it. `python -m benchmarks.projector --orders N --batch-size B` runs this part alone; with
`--batch-size 1` every batch holds one event, which shows the fixed cost of a batch (what a
projector pays per event when events trickle in, as they do below full load)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from typing import Any

from benchmarks.harness import log, open_servers
from benchmarks.seed import Dataset, seed
from devtools.stores import StoreServers, fresh_stores


async def _drain(loop: Any, done: Any, timeout_s: float = 1800) -> float:
    """Run `loop` until `done()` holds; seconds taken."""
    started = time.perf_counter()
    task = asyncio.create_task(loop.run())
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


async def run(
    servers: StoreServers, orders: int, batch_size: int | None = None, relay_only: bool = False
) -> dict[str, Any]:
    """events/s of the relay and per projection; with `batch_size`, also the CPU this process
    spent per event; with `relay_only`, the relay alone."""
    from app.pipeline.event_log import unpublished
    from app.pipeline.relay import OutboxRelay
    from app.pipeline.runner import ProjectionRunner
    from app.pipeline.status import projection_statuses
    from app.projections.registry import PROJECTIONS
    from app.runtime.bootstrap import open_stores

    async with fresh_stores(servers, "bench_projector") as stores:
        events = await seed(stores.write, Dataset.for_orders(orders), published=False)
        settings = stores.settings(
            log_level="warning",
            **({"projector_batch_size": batch_size} if batch_size is not None else {}),
        )
        results: dict[str, Any] = {"events": events, "per_projection": {}, "cpu_us_per_event": {}}
        async with open_stores(settings) as opened:

            async def published() -> bool:
                async with opened.write_engine.connect() as connection:
                    return await unpublished(connection) == 0

            log(f"projector: relaying {events} events to Redis")
            seconds = await _drain(
                OutboxRelay(opened.write_engine, opened.redis, settings), published
            )
            results["relay_events_per_s"] = events / seconds
            if relay_only:
                return results

            async def caught_up(projections: list[Any]) -> bool:
                statuses = await projection_statuses(
                    opened.read_engine, opened.redis, settings.redis_prefix,
                    settings.stream_partitions, projections,
                )  # fmt: skip
                return all(s.lag_events == 0 and s.events_applied > 0 for s in statuses)

            for projection in PROJECTIONS:
                log(f"projector: {projection.name} alone on {events} events")
                runner = ProjectionRunner([projection], opened.read_engine, opened.redis, settings)
                cpu = time.process_time()
                seconds = await _drain(runner, lambda p=projection: caught_up([p]))
                cpu = time.process_time() - cpu
                results["per_projection"][projection.name] = events / seconds
                results["cpu_us_per_event"][projection.name] = 1e6 * cpu / events
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.projector", description=__doc__)
    parser.add_argument("--orders", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--relay-only", action="store_true", help="measure the relay alone")
    args = parser.parse_args()

    async def measure() -> dict[str, Any]:
        with open_servers() as servers:
            return await run(servers, args.orders, args.batch_size, args.relay_only)

    results = asyncio.run(measure())
    print(f"{results['events']:,} events, batches of {args.batch_size or 'up to 500'}")
    print(f"{'relay':>18}: {results['relay_events_per_s']:8,.0f} events/s")
    for name, rate in results["per_projection"].items():
        cpu = results["cpu_us_per_event"][name]
        print(f"{name:>18}: {rate:8,.0f} events/s, {cpu:6,.0f} us CPU per event")


if __name__ == "__main__":
    main()
