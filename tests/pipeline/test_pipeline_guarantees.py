"""The pipeline's guarantees with real worker processes: exactly once, in order, whatever dies."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config.settings import Role, Settings
from app.runtime.bootstrap import Stores
from devtools.graphql_client import GraphQLClient
from devtools.processes import ShopProcesses
from devtools.read_model_check import read_models, replay_log
from devtools.servers import running_server
from tests.support.pipeline_waits import until_projected
from tests.support.shop_traffic import Traffic

# Heavy load: run one after another with the other load tests (see pyproject addopts).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("load")]


@pytest.fixture
async def command_api(settings: Settings) -> AsyncIterator[GraphQLClient]:
    """A command-role server: mutations only, no relay or projectors in-process."""
    command_role = settings.model_copy(update={"role": Role.COMMAND})
    async with running_server(command_role) as server, httpx.AsyncClient(timeout=60) as client:
        yield GraphQLClient(server.graphql_url, client)


@pytest.fixture
def workers(shop_env: dict[str, str], tmp_path: Path) -> Iterator[ShopProcesses]:
    running = ShopProcesses(shop_env, tmp_path)
    try:
        yield running
    finally:
        running.stop()


async def assert_equals_a_rebuild(stores: Stores, spare: AsyncEngine) -> None:
    await replay_log(stores.write_engine, spare)
    assert await read_models(stores.read_engine) == await read_models(spare)


async def events_applied(stores: Stores) -> dict[str, int]:
    async with stores.read_engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT projection, events_applied FROM projection_state")
        )
        return dict(rows.all())


async def followed_events(stores: Stores) -> dict[str, int]:
    """How many logged events each projection follows (what it must apply exactly once)."""
    from app.projections.registry import PROJECTIONS

    async with stores.write_engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT aggregate_type, count(*) FROM outbox GROUP BY aggregate_type")
        )
        per_type = dict(rows.all())
    return {p.name: sum(per_type.get(t, 0) for t in p.aggregate_types) for p in PROJECTIONS}


async def test_three_workers_apply_every_event_once_and_in_order(
    command_api: GraphQLClient,
    workers: ShopProcesses,
    stores: Stores,
    spare_read_engine: AsyncEngine,
) -> None:
    for _ in range(3):
        workers.start_worker()
    traffic = Traffic(command_api, seed=1)
    await traffic.set_up()
    await traffic.run(400)
    await until_projected(stores)
    await assert_equals_a_rebuild(stores, spare_read_engine)
    assert await events_applied(stores) == await followed_events(stores)


async def test_workers_killed_20_times_lose_and_repeat_nothing(
    command_api: GraphQLClient,
    workers: ShopProcesses,
    stores: Stores,
    spare_read_engine: AsyncEngine,
) -> None:
    rng = random.Random(2)
    for _ in range(3):
        workers.start_worker()
    traffic = Traffic(command_api, seed=2)
    await traffic.set_up()
    kills = 0

    async def chaos() -> None:
        nonlocal kills
        while kills < 20:
            await asyncio.sleep(rng.uniform(0.2, 0.7))
            workers.kill(rng.choice(list(workers.processes)))
            kills += 1
            workers.start_worker()

    await asyncio.gather(traffic.run(480), chaos())
    assert kills >= 20
    await until_projected(stores, timeout_s=120)
    await assert_equals_a_rebuild(stores, spare_read_engine)
    assert await events_applied(stores) == await followed_events(stores)
