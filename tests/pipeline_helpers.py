"""Waiting on the pipeline in tests, and comparing read models with a rebuild."""

from __future__ import annotations

from app.pipeline.catch_up import wait_until_applied
from app.pipeline.status import ProjectionStatus, projection_statuses
from app.projections.registry import PROJECTIONS
from app.runtime.bootstrap import Api, Stores
from scripts.read_model_check import projections_behind, read_models, replay_log

# read_models and replay_log live with the soak test's audit, which uses them too.
__all__ = ["caught_up", "read_models", "replay_log", "settled_statuses", "until_projected"]


async def caught_up(process: Api, token: str, timeout_s: float = 30) -> None:
    """Fail unless every projection concerned applies the token's events in time."""
    result = await wait_until_applied(
        process.stores.read_engine, process.services.changes, token, PROJECTIONS, timeout_s
    )
    assert result.caught_up, f"projections {result.projections} did not catch up"


async def until_projected(stores: Stores, timeout_s: float = 90) -> None:
    """Wait until every projection has applied the latest version of every aggregate it follows."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        behind = await projections_behind(stores.write_engine, stores.read_engine)
        if not any(behind.values()):
            return
        assert time.monotonic() < deadline, f"aggregates not yet projected: {behind}"
        await asyncio.sleep(0.25)


async def settled_statuses(stores: Stores) -> list[ProjectionStatus]:
    """Every projection's status once all report no lag, or as they are after 10 s (the
    caller asserts on them)."""
    import asyncio

    s = stores.settings
    for _ in range(100):
        statuses = await projection_statuses(
            stores.read_engine, stores.redis, s.redis_prefix, s.stream_partitions, PROJECTIONS
        )
        if all(status.lag_events == 0 for status in statuses):
            break
        await asyncio.sleep(0.1)
    return statuses
