"""The composition root: engines and clients are made here, at start-up, never at import."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters import postgres
from app.adapters import redis as redis_adapter
from app.adapters.migrations import History, require_current, upgrade
from app.projections.change_feed import ChangeFeed
from app.services import Services
from app.settings import Settings
from app.write.authorization import command_rules
from app.write.bus import CommandBus
from app.write.handlers import HANDLERS
from app.write.middleware import (
    CommandMetrics,
    authorization,
    idempotent,
    log_commands,
    transaction,
)

log = logging.getLogger("app.bootstrap")


class NotConfiguredError(RuntimeError):
    """A store URL is missing where it must have been resolved already."""


def _required(value: str | None, variable: str) -> str:
    if value is None:
        raise NotConfiguredError(f"{variable} is not set and no embedded server was started")
    return value


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Create the engines and the Redis client; dispose of them on exit."""
    write, read = (
        postgres.create_engine(
            _required(url, variable),
            pool_size=settings.db_pool_size,
            connect_timeout_s=settings.db_connect_timeout_s,
        )
        for url, variable in (
            (settings.database_url, "SHOP_DATABASE_URL"),
            (settings.read_database_url, "SHOP_READ_DATABASE_URL"),
        )
    )
    redis = redis_adapter.create_redis(
        _required(settings.redis_url, "SHOP_REDIS_URL"),
        timeout_s=settings.readiness_timeout_s,
        cluster=settings.redis_cluster,
    )
    metrics = CollectorRegistry()
    changes = ChangeFeed(redis, settings.redis_prefix)
    feed = asyncio.create_task(changes.run(), name="change-feed")
    try:
        yield Services(settings, write, read, redis, command_bus(write, metrics), metrics, changes)
    finally:
        feed.cancel()
        await asyncio.gather(feed, return_exceptions=True)
        await redis.aclose()
        await asyncio.gather(write.dispose(), read.dispose())


def command_bus(write_engine: AsyncEngine, metrics: CollectorRegistry) -> CommandBus:
    """The bus with its middleware, outermost first; idempotency needs the transaction."""
    return CommandBus(
        HANDLERS,
        [
            log_commands,
            CommandMetrics(metrics),
            transaction(write_engine),
            authorization(command_rules),
            idempotent,
        ],
    )


async def migrate(services: Services) -> None:
    """Bring both stores to the code's schema."""
    await upgrade(services.write_engine, History.WRITE)
    await upgrade(services.read_engine, History.READ)


async def require_migrated(services: Services) -> None:
    """Refuse to go on against stores whose schema does not match this code."""
    await require_current(services.write_engine, History.WRITE)
    await require_current(services.read_engine, History.READ)


async def readiness(services: Services) -> dict[str, str]:
    """Ask each store to answer within the readiness timeout; 'ok' or the reason it did not."""
    checks: dict[str, Awaitable[None]] = {
        "write_store": postgres.ping(services.write_engine),
        "read_store": postgres.ping(services.read_engine),
        "redis": redis_adapter.ping(services.redis),
    }
    timeout = services.settings.readiness_timeout_s
    results = await asyncio.gather(
        *(asyncio.wait_for(check, timeout) for check in checks.values()), return_exceptions=True
    )
    return {
        name: "ok" if result is None else _reason(result)
        for name, result in zip(checks, results, strict=True)
    }


def _reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    return f"{type(error).__name__}: {error}".strip().splitlines()[0][:200]
