"""The composition root: engines, clients and the command bus are made here, at start-up,
never at import, and each part is handed only what it uses.

A command opens only what it needs: `shop migrate` and `shop dlq` no Redis, `shop projections
status` no write store; an API process (`open_api`) opens everything and runs the change feed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial

import asyncpg
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters import postgres
from app.adapters import redis as redis_adapter
from app.adapters.migrations import History, require_current
from app.adapters.redis import RedisClient
from app.adapters.service_keys import service_key
from app.config.settings import Settings
from app.events.consistency_token import TokenKey
from app.graphql.context import Services
from app.pipeline.cancellation import cancel_and_wait
from app.pipeline.catch_up import CatchUpWaiter
from app.pipeline.change_feed import ChangeFeed
from app.security.tokens import Authenticator
from app.write.authorization import command_rules
from app.write.bus import CommandBus
from app.write.executor import CommandExecutor
from app.write.handlers import HANDLERS
from app.write.instrumentation import CommandMetrics
from app.write.remembered import Remembered
from app.write.unit_of_work import PostgresUnitOfWork

log = logging.getLogger("app.runtime.bootstrap")


class NotConfiguredError(RuntimeError):
    """A store URL is missing where it must have been resolved already."""


def _required(value: str | None, variable: str) -> str:
    if value is None:
        raise NotConfiguredError(f"{variable} is not set and no embedded server was started")
    return value


@asynccontextmanager
async def write_engine(
    settings: Settings, pool_size: int | None = None
) -> AsyncIterator[AsyncEngine]:
    """The write store's engine, disposed of on exit."""
    async with _engine(settings, settings.database_url, "SHOP_DATABASE_URL", pool_size) as engine:
        yield engine


@asynccontextmanager
async def read_engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The read store's engine, disposed of on exit."""
    async with _engine(settings, settings.read_database_url, "SHOP_READ_DATABASE_URL") as engine:
        yield engine


@asynccontextmanager
async def _engine(
    settings: Settings, url: str | None, variable: str, pool_size: int | None = None
) -> AsyncIterator[AsyncEngine]:
    engine = postgres.create_engine(
        _required(url, variable),
        pool_size=pool_size or settings.db_pool_size,
        connect_timeout_s=settings.db_connect_timeout_s,
    )
    try:
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def redis_client(settings: Settings) -> AsyncIterator[RedisClient]:
    """The Redis client (a cluster client when SHOP_REDIS_CLUSTER is set), closed on exit."""
    redis = redis_adapter.create_redis(
        _required(settings.redis_url, "SHOP_REDIS_URL"),
        timeout_s=settings.readiness_timeout_s,
        cluster=settings.redis_cluster,
    )
    try:
        yield redis
    finally:
        await redis.aclose()


@dataclass(frozen=True)
class Stores:
    """The two databases and Redis, opened with these settings."""

    settings: Settings
    write_engine: AsyncEngine
    read_engine: AsyncEngine
    redis: RedisClient


@asynccontextmanager
async def open_stores(
    settings: Settings, write_pool_size: int | None = None
) -> AsyncIterator[Stores]:
    """Both engines and the Redis client (what a worker uses); closed on exit.
    `write_pool_size`: the write engine's pool, if not SHOP_DB_POOL_SIZE."""
    async with AsyncExitStack() as stack:
        yield Stores(
            settings,
            await stack.enter_async_context(write_engine(settings, write_pool_size)),
            await stack.enter_async_context(read_engine(settings)),
            await stack.enter_async_context(redis_client(settings)),
        )


@dataclass(frozen=True)
class Api:
    """What an API process holds: its stores, its metrics, and what resolvers use."""

    stores: Stores
    metrics: CollectorRegistry
    services: Services

    @property
    def settings(self) -> Settings:
        return self.stores.settings


_API_WRITE_ENGINE_POOL = 2  # and as many again on overflow


@asynccontextmanager
async def open_api(settings: Settings) -> AsyncIterator[Api]:
    """Everything an API process uses, with the change feed running; closed on exit.

    Commands run on a plain asyncpg pool (`write_pool`), so the write engine serves only the
    start-up, readiness and metrics queries (and the relay when the pipeline runs on the
    API's event loop): a small pool of its own."""
    async with open_stores(settings, write_pool_size=_API_WRITE_ENGINE_POOL) as stores:
        token_key = await consistency_token_key(settings, stores.write_engine)
        metrics = CollectorRegistry()
        changes = ChangeFeed(stores.redis, settings.redis_prefix)
        feed = asyncio.create_task(changes.run(), name="change-feed")
        query_engine = stores.read_engine.execution_options(isolation_level="AUTOCOMMIT")
        read_pool = await postgres.create_pool(
            _required(settings.read_database_url, "SHOP_READ_DATABASE_URL"),
            pool_size=settings.db_pool_size,
            # Short: a read that cannot connect at once goes to the reference executor, which
            # waits the full connect timeout for its own connection (compiled_queries.py).
            connect_timeout_s=min(
                settings.db_connect_timeout_s, postgres.COMPILED_CONNECT_TIMEOUT_S
            ),
        )
        write_pool = await postgres.create_pool(
            _required(settings.database_url, "SHOP_DATABASE_URL"),
            # As many as the write engine may open (its pool and as many again in overflow).
            pool_size=2 * settings.db_pool_size,
            connect_timeout_s=settings.db_connect_timeout_s,
        )
        services = Services(
            settings=settings,
            bus=command_bus(write_pool, metrics, token_key),
            query_engine=query_engine,
            read_pool=read_pool,
            redis=stores.redis,
            changes=changes,
            catch_up=CatchUpWaiter(query_engine, changes, settings.max_waits_per_process),
            authenticator=Authenticator(settings),
            token_key=token_key,
        )
        try:
            yield Api(stores, metrics, services)
        finally:
            await services.catch_up.close()
            await cancel_and_wait(feed)
            await read_pool.close()
            await write_pool.close()


def command_bus(
    write_pool: asyncpg.Pool, metrics: CollectorRegistry, token_key: TokenKey
) -> CommandBus:
    """The bus: each command run by the executor on the write store, logged and measured."""
    executor = CommandExecutor(
        # One memory per process, shared by its commands (app/write/remembered.py).
        unit_of_work=partial(PostgresUnitOfWork, write_pool, memory=Remembered()),
        handlers=HANDLERS,
        policy=command_rules,
        token_key=token_key,
    )
    return CommandBus(executor, CommandMetrics(metrics))


async def consistency_token_key(settings: Settings, write_engine: AsyncEngine) -> TokenKey:
    """The key consistency tokens are signed with: SHOP_CONSISTENCY_TOKEN_SECRET, else the one
    kept in the write store (made by the first process that asks), so every process agrees."""
    if settings.consistency_token_secret is not None:
        return TokenKey(settings.consistency_token_secret.get_secret_value().encode())
    return TokenKey(await service_key(write_engine, "consistency_token"))


async def require_migrated(stores: Stores) -> None:
    """Refuse to go on against stores whose schema does not match this code."""
    await require_current(stores.write_engine, History.WRITE)
    await require_current(stores.read_engine, History.READ)


async def readiness(stores: Stores) -> dict[str, str]:
    """Ask each store to answer within the readiness timeout; 'ok' or the reason it did not."""
    checks: dict[str, Awaitable[None]] = {
        "write_store": postgres.ping(stores.write_engine),
        "read_store": postgres.ping(stores.read_engine),
        "redis": redis_adapter.ping(stores.redis),
    }
    timeout_s = stores.settings.readiness_timeout_s
    results = await asyncio.gather(
        *(asyncio.wait_for(check, timeout_s) for check in checks.values()), return_exceptions=True
    )
    return {
        name: "ok" if result is None else _reason(result)
        for name, result in zip(checks, results, strict=True)
    }


def _reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    return f"{type(error).__name__}: {error}".strip().splitlines()[0][:200]
