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

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config.settings import Settings
from app.runtime.bootstrap import Api, Stores, open_api
from devtools.databases import Databases, open_engine, unique_tag
from devtools.graphql_client import GraphQLClient
from devtools.processes import shop_command
from devtools.servers import ServerUnderTest, running_server
from devtools.stores import StoreServers, StoreUrls, delete_prefix, store_servers


@pytest.fixture(scope="session")
def servers_for_tests() -> Iterator[StoreServers]:
    """The servers the environment names; embedded ones for whatever it does not.

    Embedded ones live in a temporary folder of their own, not under pytest's base
    directory: pytest deletes all but the newest three of those when a session starts, so
    a second test session on the machine would remove this one's running servers.
    """
    with store_servers(
        os.environ.get("SHOP_TEST_DATABASE_URL"), os.environ.get("SHOP_TEST_REDIS_URL")
    ) as servers:
        yield servers


@pytest.fixture(scope="session")
def postgres_server_url(servers_for_tests: StoreServers) -> str:
    """A URL of the PostgreSQL server tests run on (its `postgres` database)."""
    return servers_for_tests.postgres_url


@pytest.fixture(scope="session")
def redis_server_url(servers_for_tests: StoreServers) -> str:
    """A URL of the Redis server tests run on."""
    return servers_for_tests.redis_url


@pytest.fixture(scope="session")
def template_databases(postgres_server_url: str) -> Iterator[Databases]:
    """Migrated template databases, made once per session and dropped at its end."""
    templates = Databases(postgres_server_url, unique_tag("shop_tpl"))

    async def create() -> None:
        await templates.create()
        await templates.migrate()

    asyncio.run(create())
    try:
        yield templates
    finally:
        asyncio.run(templates.drop())


def _fresh_databases(server_url: str, templates: Databases | None) -> Databases:
    databases = Databases(server_url, unique_tag("shop_test"))
    asyncio.run(databases.create(templates))
    return databases


def _settings_for(databases: Databases, redis_server_url: str) -> Settings:
    prefix = f"test:{uuid.uuid4().hex[:12]}"
    stores = StoreUrls(databases.url("write"), databases.url("read"), redis_server_url, prefix)
    # SHOP_TEST_EXECUTOR=reference: every query through strawberry, none compiled (CI runs
    # the suite once each way, so every query test passes on both executors).
    compiled = os.environ.get("SHOP_TEST_EXECUTOR", "compiled") != "reference"
    # An app served in the test's own event loop (running_server) runs the pipeline on that
    # loop: there is no `shop serve` to start it as a child process.
    return stores.settings(
        stream_partitions=2,
        lease_ttl_s=3,
        compiled_queries=compiled,
        pipeline_process=False,
        db_pool_size=6,  # see shop_env
        gc_freeze=False,  # frozen objects of one test would outlive it in this process
    )


def _fresh_settings(
    postgres_server_url: str, redis_server_url: str, templates: Databases | None
) -> Iterator[Settings]:
    databases = _fresh_databases(postgres_server_url, templates)
    settings = _settings_for(databases, redis_server_url)
    try:
        yield settings
    finally:
        asyncio.run(databases.drop())
        asyncio.run(delete_prefix(redis_server_url, settings.redis_prefix))


@pytest.fixture
def settings(
    postgres_server_url: str, redis_server_url: str, template_databases: Databases
) -> Iterator[Settings]:
    """Settings pointing at fresh, migrated write and read databases and a fresh Redis prefix."""
    yield from _fresh_settings(postgres_server_url, redis_server_url, template_databases)


@pytest.fixture
def unmigrated_settings(postgres_server_url: str, redis_server_url: str) -> Iterator[Settings]:
    """Settings pointing at empty write and read databases (no schema at all)."""
    yield from _fresh_settings(postgres_server_url, redis_server_url, None)


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
    """Environment for a `shop` subprocess on the test's stores. Small pools: three test
    processes share one PostgreSQL (max_connections 100 by default) with the `shop` processes
    they start, a `shop serve` and its pipeline child each holding two engines."""
    return StoreUrls.of(settings).env(SHOP_DB_POOL_SIZE="4")


@pytest.fixture
def shop_bin() -> Path:
    """The `shop` console script of the interpreter running the tests."""
    return shop_command()


@pytest.fixture
async def gql(server: ServerUnderTest) -> AsyncIterator[GraphQLClient]:
    """A GraphQL client talking HTTP to the test's server."""
    async with httpx.AsyncClient(timeout=60) as client:
        yield GraphQLClient(server.graphql_url, client)


@pytest.fixture
def spare_read_database(postgres_server_url: str, template_databases: Databases) -> Iterator[str]:
    """A second, empty, migrated read store (to replay the event log into and compare)."""
    databases = _fresh_databases(postgres_server_url, template_databases)
    try:
        yield databases.url("read")
    finally:
        asyncio.run(databases.drop())


@pytest.fixture
async def spare_read_engine(spare_read_database: str) -> AsyncIterator[AsyncEngine]:
    async with open_engine(spare_read_database, pool_size=2) as engine:
        yield engine
