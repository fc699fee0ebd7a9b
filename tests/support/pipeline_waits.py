"""Waiting on the pipeline in tests."""

from __future__ import annotations

import asyncio

from app.pipeline.event_log import unpublished
from app.pipeline.status import ProjectionStatus, projection_statuses
from app.projections.registry import PROJECTIONS
from app.runtime.bootstrap import Api, Stores
from devtools import read_model_check
from tests.support.consistency_tokens import versions_of


async def caught_up(process: Api, token: str, timeout_s: float = 30) -> None:
    """Fail unless every projection concerned applies the token's events in time (a token
    an open server gave)."""
    result = await process.services.catch_up.wait(
        versions_of(process, token),
        PROJECTIONS,
        timeout_s,
    )
    assert result.caught_up, f"projections {result.projections} did not catch up"


async def until_projected(stores: Stores, timeout_s: float = 90) -> None:
    """Fail unless every projection applies the latest version of every aggregate it follows
    in time."""
    behind = await read_model_check.until_projected(
        stores.write_engine, stores.read_engine, timeout_s
    )
    assert not any(behind.values()), f"aggregates not yet projected: {behind}"


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


async def until_relayed(stores: Stores, timeout_s: float = 30) -> None:
    """Fail unless the relay publishes every committed event in time."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        async with stores.write_engine.connect() as connection:
            left = await unpublished(connection)
        if left == 0:
            return
        assert asyncio.get_running_loop().time() < deadline, f"{left} events not relayed"
        await asyncio.sleep(0.1)
