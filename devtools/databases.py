"""PostgreSQL databases of one test, benchmark or soak: created empty, migrated or cloned
from migrated templates, and dropped. Nothing but databases this code named is touched."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.migrations import History, upgrade
from app.adapters.postgres import create_engine


def with_database(server_url: str, name: str) -> str:
    """The server URL naming another database, in libpq form."""
    url = make_url(server_url).set(drivername="postgresql", database=name)
    return url.render_as_string(hide_password=False)


async def run_on_server(server_url: str, *statements: str) -> None:
    """Run statements that cannot run in a transaction (CREATE or DROP DATABASE), one after
    another, on the server's `postgres` database."""
    connection = await asyncpg.connect(with_database(server_url, "postgres"), timeout=10)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def open_engine(url: str, pool_size: int = 1) -> AsyncIterator[AsyncEngine]:
    """An engine on one database for the block's duration."""
    engine = create_engine(url, pool_size=pool_size, connect_timeout_s=10)
    try:
        yield engine
    finally:
        await engine.dispose()


# A service's two stores: each role's database and the migration history it takes.
SHOP_DATABASES: Mapping[str, History] = MappingProxyType(
    {"write": History.WRITE, "read": History.READ}
)


def unique_tag(prefix: str) -> str:
    """`prefix` with a random suffix: a name no other run uses."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class Databases:
    """Databases `<tag>_<role>` on one PostgreSQL server, one a role."""

    server_url: str
    tag: str
    histories: Mapping[str, History] = field(default_factory=lambda: SHOP_DATABASES)

    def name(self, role: str) -> str:
        return f"{self.tag}_{role}"

    def url(self, role: str) -> str:
        return with_database(self.server_url, self.name(role))

    async def create(self, templates: Databases | None = None) -> None:
        """Create them empty, or as copies of the same roles' `templates`."""
        await run_on_server(
            self.server_url,
            *(
                f'CREATE DATABASE "{self.name(role)}"'
                + (f' TEMPLATE "{templates.name(role)}"' if templates is not None else "")
                for role in self.histories
            ),
        )

    async def migrate(self) -> None:
        """Bring each database to the head of its role's migration history."""
        for role, history in self.histories.items():
            async with open_engine(self.url(role)) as engine:
                await upgrade(engine, history)

    async def drop(self) -> None:
        """Drop them, whoever is still connected."""
        await run_on_server(
            self.server_url,
            *(
                f'DROP DATABASE IF EXISTS "{self.name(role)}" WITH (FORCE)'
                for role in self.histories
            ),
        )


@contextlib.asynccontextmanager
async def fresh_databases(
    server_url: str,
    prefix: str,
    histories: Mapping[str, History] = SHOP_DATABASES,
    *,
    keep: bool = False,
) -> AsyncIterator[Databases]:
    """Migrated databases with a fresh tag; dropped at the end unless `keep`."""
    databases = Databases(server_url, unique_tag(prefix), histories)
    await databases.create()
    try:
        await databases.migrate()
        yield databases
    finally:
        if not keep:
            await databases.drop()
