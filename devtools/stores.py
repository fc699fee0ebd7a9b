"""The PostgreSQL and Redis servers a run uses (the ones named, else embedded ones), and one
service's stores on them: fresh databases and a Redis key prefix, as settings or as the
environment of a `shop` process."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from app.config.settings import Settings
from app.embedded import EmbeddedServers, EmbeddedUrls
from devtools.databases import fresh_databases, with_database

_NOTHING_EMBEDDED = EmbeddedUrls(None, None, None)


@dataclass(frozen=True)
class StoreServers:
    """A PostgreSQL server (the URL of its `postgres` database) and a Redis server."""

    postgres_url: str
    redis_url: str
    description: str


@contextlib.contextmanager
def store_servers(
    postgres_url: str | None,
    redis_url: str | None,
    folder: Path | None = None,
    named: str = "the PostgreSQL and Redis named",
) -> Iterator[StoreServers]:
    """The servers named (described as `named`); embedded ones, in `folder` (else a
    temporary one), for any not named, stopped when the block ends."""
    with _embedded(folder, postgres=not postgres_url, redis=not redis_url) as embedded:
        postgres_url = postgres_url or embedded.write_database_url
        redis_url = redis_url or embedded.redis_url
        assert postgres_url is not None
        assert redis_url is not None
        description = named if embedded is _NOTHING_EMBEDDED else "embedded PostgreSQL and Redis"
        yield StoreServers(with_database(postgres_url, "postgres"), redis_url, description)


@contextlib.contextmanager
def postgres_server(url: str | None) -> Iterator[str]:
    """The PostgreSQL server named (its `postgres` database), else an embedded one in a
    temporary folder for as long as the block runs."""
    with _embedded(None, postgres=not url, redis=False) as embedded:
        url = url or embedded.write_database_url
        assert url is not None
        yield with_database(url, "postgres")


@contextlib.contextmanager
def _embedded(folder: Path | None, *, postgres: bool, redis: bool) -> Iterator[EmbeddedUrls]:
    if not (postgres or redis):
        yield _NOTHING_EMBEDDED
        return
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="shop-stores-")))
        yield stack.enter_context(EmbeddedServers(folder, postgres=postgres, redis=redis))


async def server_versions(postgres_url: str, redis_url: str) -> dict[str, str]:
    """The versions of the PostgreSQL and Redis servers."""
    connection = await asyncpg.connect(postgres_url)
    try:
        postgres = str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()
    client = aioredis.Redis.from_url(redis_url)
    try:
        info = await client.info("server")
    finally:
        await client.aclose()
    return {"postgres": postgres, "redis": str(info["redis_version"])}


@dataclass(frozen=True)
class StoreUrls:
    """One service's stores: its write and read databases, its Redis and its key prefix."""

    write: str
    read: str
    redis: str
    prefix: str

    @classmethod
    def of(cls, settings: Settings) -> StoreUrls:
        assert settings.database_url is not None
        assert settings.read_database_url is not None
        assert settings.redis_url is not None
        return cls(
            settings.database_url,
            settings.read_database_url,
            settings.redis_url,
            settings.redis_prefix,
        )

    def settings(self, **extra: Any) -> Settings:
        return Settings(
            database_url=self.write,
            read_database_url=self.read,
            redis_url=self.redis,
            redis_prefix=self.prefix,
            **extra,
        )

    def env(self, base: Mapping[str, str] | None = None, /, **extra: str) -> dict[str, str]:
        """The environment of a `shop` process on these stores: `base` (else this process's
        environment) with the stores' settings and `extra`."""
        return {
            **(os.environ if base is None else base),
            "SHOP_DATABASE_URL": self.write,
            "SHOP_READ_DATABASE_URL": self.read,
            "SHOP_REDIS_URL": self.redis,
            "SHOP_REDIS_PREFIX": self.prefix,
            **extra,
        }


@contextlib.asynccontextmanager
async def fresh_stores(servers: StoreServers, prefix: str) -> AsyncIterator[StoreUrls]:
    """Migrated, empty write and read databases and a Redis key prefix, all named
    `<prefix>_<random>`; dropped and deleted at the end."""
    async with fresh_databases(servers.postgres_url, prefix) as databases:
        stores = StoreUrls(
            databases.url("write"), databases.url("read"), servers.redis_url, databases.tag
        )
        try:
            yield stores
        finally:
            await delete_prefix(servers.redis_url, stores.prefix)


async def delete_prefix(redis_url: str, prefix: str) -> None:
    """Delete every Redis key that starts with `prefix`."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
    finally:
        await client.aclose()
