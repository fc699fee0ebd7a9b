"""Alembic, driven from code: one history for the write store, one for the read store."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

_MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


class History(StrEnum):
    """The two independent migration histories."""

    WRITE = "write"
    READ = "read"

    @property
    def version_table(self) -> str:
        # Distinct names let both histories live in one database if an operator insists.
        return f"alembic_version_{self.value}"

    @property
    def lock_key(self) -> int:
        # Advisory lock ids: two processes migrating at once take turns.
        return 0x5E0_0000 + (1 if self is History.WRITE else 2)


@dataclass(frozen=True)
class SchemaState:
    """Where a database's schema stands against the code's migration history."""

    history: History
    current: tuple[str, ...]
    head: tuple[str, ...]

    @property
    def up_to_date(self) -> bool:
        return set(self.current) == set(self.head)

    @property
    def unknown(self) -> bool:
        """True when the database holds a revision this code does not know (a newer release)."""
        script = _script(self.history)
        return any(script.get_revision(rev) is None for rev in self.current)


class SchemaBehindError(RuntimeError):
    """The database's schema does not match this version of the code."""


def _config(history: History, connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(_MIGRATIONS / history.value))
    config.attributes["connection"] = connection
    config.attributes["version_table"] = history.version_table
    return config


def _script(history: History) -> ScriptDirectory:
    return ScriptDirectory.from_config(_config(history))


def _upgrade(connection: Connection, history: History, target: str) -> None:
    command.upgrade(_config(history, connection), target)


def _state(connection: Connection, history: History) -> SchemaState:
    context = MigrationContext.configure(connection, opts={"version_table": history.version_table})
    return SchemaState(history, context.get_current_heads(), tuple(_script(history).get_heads()))


async def upgrade(engine: AsyncEngine, history: History, target: str = "head") -> None:
    """Apply every pending migration of one history (up to `target`, a revision), holding an
    advisory lock meanwhile."""
    async with engine.begin() as connection:
        await connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": history.lock_key}
        )
        await connection.run_sync(_upgrade, history, target)


async def schema_state(engine: AsyncEngine, history: History) -> SchemaState:
    """Read which revisions the database is at."""
    async with engine.connect() as connection:
        return await connection.run_sync(_state, history)


async def require_current(engine: AsyncEngine, history: History) -> None:
    """Raise SchemaBehindError, saying what to run, unless the schema is at the code's head."""
    state = await schema_state(engine, history)
    if state.up_to_date:
        return
    if state.unknown:
        raise SchemaBehindError(
            f"the {history.value} database is at revision {', '.join(state.current)}, which this "
            "version of cqrs-shop does not know: it was migrated by a newer release"
        )
    at = ", ".join(state.current) or "an empty schema"
    raise SchemaBehindError(
        f"the {history.value} database's schema is behind ({at}; this code needs "
        f"{', '.join(state.head)}): run `shop migrate` first"
    )


READER_ROLE = "shop_reader"


async def grant_read_access(engine: AsyncEngine, role: str = READER_ROLE) -> None:
    """Create (if need be) a login role that may only SELECT the read store's tables.

    Default privileges give it SELECT on tables created later too, such as the shadow tables a
    rebuild swaps in.
    """
    if not role.replace("_", "").isalnum():
        raise ValueError(f"bad role name {role!r}")
    async with engine.begin() as connection:
        await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": 0x5E0_0003})
        await connection.execute(
            text(
                "DO $$ BEGIN "
                f"IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN "
                f"CREATE ROLE {role} LOGIN; END IF; END $$"
            )
        )
        database = await connection.scalar(text("SELECT current_database()"))
        for statement in (
            f'GRANT CONNECT ON DATABASE "{database}" TO {role}',
            f"GRANT USAGE ON SCHEMA public TO {role}",
            f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
            f"ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO {role}",
        ):
            await connection.execute(text(statement))
