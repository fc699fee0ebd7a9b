"""Real PostgreSQL and Redis for every test: the servers named by SHOP_TEST_DATABASE_URL and
SHOP_TEST_REDIS_URL when set, otherwise embedded servers started once per session.

Each test gets fresh write and read databases cloned from migrated templates, and its own
Redis key prefix, so tests run in any order without seeing each other's data.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import redis
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.migrations import History, upgrade
from app.adapters.postgres import create_engine
from app.config.settings import Settings
from app.runtime.bootstrap import Api, Stores, open_api
from devtools.databases import run_on_server, with_database
from tests.graphql_client import GraphQLClient
from tests.servers import ServerUnderTest, running_server

if TYPE_CHECKING:
    from app.embedded import EmbeddedServers

RUN_ID = uuid.uuid4().hex[:8]


async def _migrate_template(url: str, history: History) -> None:
    engine = create_engine(url, pool_size=1, connect_timeout_s=10)
    try:
        await upgrade(engine, history)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def embedded_for_tests(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[EmbeddedServers | None]:
    """Embedded servers for whatever the environment does not name; None if it names both."""
    need_pg = not os.environ.get("SHOP_TEST_DATABASE_URL")
    need_redis = not os.environ.get("SHOP_TEST_REDIS_URL")
    if not (need_pg or need_redis):
        yield None
        return
    from app.embedded import EmbeddedServers

    servers = EmbeddedServers(
        tmp_path_factory.mktemp("embedded"), postgres=need_pg, redis=need_redis
    )
    servers.start()
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture(scope="session")
def postgres_server_url(embedded_for_tests: EmbeddedServers | None) -> str:
    """A URL of the PostgreSQL server tests run on (its `postgres` database)."""
    configured = os.environ.get("SHOP_TEST_DATABASE_URL")
    if configured:
        return with_database(configured, "postgres")
    assert embedded_for_tests is not None
    urls = embedded_for_tests.start()
    assert urls.write_database_url is not None
    return with_database(urls.write_database_url, "postgres")


@pytest.fixture(scope="session")
def redis_server_url(embedded_for_tests: EmbeddedServers | None) -> str:
    """A URL of the Redis server tests run on."""
    configured = os.environ.get("SHOP_TEST_REDIS_URL")
    if configured:
        return configured
    assert embedded_for_tests is not None
    urls = embedded_for_tests.start()
    assert urls.redis_url is not None
    return urls.redis_url


@pytest.fixture(scope="session")
def template_databases(postgres_server_url: str) -> Iterator[dict[History, str]]:
    """Migrated template databases, made once per session and dropped at its end."""
    names = {history: f"shop_tpl_{RUN_ID}_{history.value}" for history in History}

    async def create() -> None:
        await run_on_server(
            postgres_server_url, *(f'CREATE DATABASE "{n}"' for n in names.values())
        )
        for history, name in names.items():
            await _migrate_template(with_database(postgres_server_url, name), history)

    asyncio.run(create())
    try:
        yield names
    finally:
        drops = (f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in names.values())
        asyncio.run(run_on_server(postgres_server_url, *drops))


def _fresh_databases(server_url: str, templates: dict[History, str] | None) -> dict[History, str]:
    suffix = uuid.uuid4().hex[:10]
    names = {history: f"shop_test_{suffix}_{history.value}" for history in History}
    statements = [
        f'CREATE DATABASE "{name}"'
        + (f' TEMPLATE "{templates[history]}"' if templates is not None else "")
        for history, name in names.items()
    ]
    asyncio.run(run_on_server(server_url, *statements))
    return names


def _drop_databases(server_url: str, names: dict[History, str]) -> None:
    drops = (f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names.values())
    asyncio.run(run_on_server(server_url, *drops))


def _delete_prefix(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _settings_for(
    postgres_server_url: str, redis_server_url: str, names: dict[History, str], **extra: object
) -> Settings:
    return Settings(
        database_url=with_database(postgres_server_url, names[History.WRITE]),
        read_database_url=with_database(postgres_server_url, names[History.READ]),
        redis_url=redis_server_url,
        redis_prefix=f"test:{uuid.uuid4().hex[:12]}",
        stream_partitions=2,
        lease_ttl_s=3,
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def settings(
    postgres_server_url: str, redis_server_url: str, template_databases: dict[History, str]
) -> Iterator[Settings]:
    """Settings pointing at fresh, migrated write and read databases and a fresh Redis prefix."""
    names = _fresh_databases(postgres_server_url, template_databases)
    settings = _settings_for(postgres_server_url, redis_server_url, names)
    try:
        yield settings
    finally:
        _drop_databases(postgres_server_url, names)
        _delete_prefix(redis_server_url, settings.redis_prefix)


@pytest.fixture
def unmigrated_settings(postgres_server_url: str, redis_server_url: str) -> Iterator[Settings]:
    """Settings pointing at empty write and read databases (no schema at all)."""
    names = _fresh_databases(postgres_server_url, None)
    settings = _settings_for(postgres_server_url, redis_server_url, names)
    try:
        yield settings
    finally:
        _drop_databases(postgres_server_url, names)


@pytest.fixture
async def process(settings: Settings) -> AsyncIterator[Api]:
    """What an API process holds (engines, Redis, the bus, the change feed) on the test's stores."""
    async with open_api(settings) as opened:
        yield opened


@pytest.fixture
def stores(process: Api) -> Stores:
    """Engines and a Redis client on the test's stores."""
    return process.stores


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[ServerUnderTest]:
    """The application served by uvicorn on a free loopback port, in this event loop."""
    async with running_server(settings) as running:
        yield running


@pytest.fixture
def shop_env(settings: Settings) -> dict[str, str]:
    """Environment for a `shop` subprocess on the test's stores."""
    assert settings.database_url
    assert settings.read_database_url
    assert settings.redis_url
    return {
        **os.environ,
        "SHOP_DATABASE_URL": settings.database_url,
        "SHOP_READ_DATABASE_URL": settings.read_database_url,
        "SHOP_REDIS_URL": settings.redis_url,
        "SHOP_REDIS_PREFIX": settings.redis_prefix,
    }


@pytest.fixture
def shop_bin() -> Path:
    """The `shop` console script of the interpreter running the tests."""
    import sys

    path = Path(sys.executable).parent / "shop"
    assert path.exists(), f"the project is not installed into {Path(sys.executable).parent}"
    return path


@pytest.fixture
async def gql(server: ServerUnderTest) -> AsyncIterator[GraphQLClient]:
    """A GraphQL client talking HTTP to the test's server."""
    async with httpx.AsyncClient(timeout=60) as client:
        yield GraphQLClient(server.graphql_url, client)


@pytest.fixture
def spare_read_database(
    postgres_server_url: str, template_databases: dict[History, str]
) -> Iterator[str]:
    """A second, empty, migrated read store (to replay the event log into and compare)."""
    names = _fresh_databases(postgres_server_url, template_databases)
    try:
        yield with_database(postgres_server_url, names[History.READ])
    finally:
        _drop_databases(postgres_server_url, names)


@pytest.fixture
async def spare_read_engine(spare_read_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(spare_read_database, pool_size=2, connect_timeout_s=10)
    try:
        yield engine
    finally:
        await engine.dispose()
