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

from app.services import Services
from app.settings import Role, Settings
from tests.graphql_client import GraphQLClient
from tests.pipeline_helpers import read_models, replay_log, until_projected
from tests.servers import running_server
from tests.shop_traffic import Traffic
from tests.workers import Workers

# Heavy load: run one after another with the other load tests (see pyproject addopts).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("load")]


@pytest.fixture
async def command_api(settings: Settings) -> AsyncIterator[GraphQLClient]:
    """A command-role server: mutations only, no relay or projectors in-process."""
    command_role = settings.model_copy(update={"role": Role.COMMAND})
    async with running_server(command_role) as server, httpx.AsyncClient(timeout=60) as client:
        yield GraphQLClient(server.graphql_url, client)


@pytest.fixture
def workers(shop_bin: Path, shop_env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    running = Workers(shop_bin, shop_env, tmp_path)
    try:
        yield running
    finally:
        running.stop_all()


async def assert_equals_a_rebuild(services: Services, spare: AsyncEngine) -> None:
    await replay_log(services.write_engine, spare)
    assert await read_models(services.read_engine) == await read_models(spare)


async def events_applied(services: Services) -> dict[str, int]:
    async with services.read_engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT projection, events_applied FROM projection_state")
        )
        return dict(rows.all())


async def followed_events(services: Services) -> dict[str, int]:
    """How many logged events each projection follows (what it must apply exactly once)."""
    from app.projections.registry import PROJECTIONS

    async with services.write_engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT aggregate_type, count(*) FROM outbox GROUP BY aggregate_type")
        )
        per_type = dict(rows.all())
    return {p.name: sum(per_type.get(t, 0) for t in p.aggregate_types) for p in PROJECTIONS}


async def test_three_workers_apply_every_event_once_and_in_order(
    command_api: GraphQLClient, workers: Workers, services: Services, spare_read_engine: AsyncEngine
) -> None:
    for _ in range(3):
        workers.start()
    traffic = Traffic(command_api, seed=1)
    await traffic.set_up()
    await traffic.run(400)
    await until_projected(services)
    await assert_equals_a_rebuild(services, spare_read_engine)
    assert await events_applied(services) == await followed_events(services)


async def test_workers_killed_20_times_lose_and_repeat_nothing(
    command_api: GraphQLClient, workers: Workers, services: Services, spare_read_engine: AsyncEngine
) -> None:
    rng = random.Random(2)
    for _ in range(3):
        workers.start()
    traffic = Traffic(command_api, seed=2)
    await traffic.set_up()
    kills = 0

    async def chaos() -> None:
        nonlocal kills
        while kills < 20:
            await asyncio.sleep(rng.uniform(0.2, 0.7))
            workers.kill(rng.choice(workers.processes))
            kills += 1
            workers.start()

    await asyncio.gather(traffic.run(480), chaos())
    assert kills >= 20
    await until_projected(services, timeout_s=120)
    await assert_equals_a_rebuild(services, spare_read_engine)
    assert await events_applied(services) == await followed_events(services)
