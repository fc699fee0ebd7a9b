"""What the `shop` commands share: settings, clear failures, stores ready to use."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from types import FrameType
from typing import NoReturn

import typer
from rich.console import Console
from sqlalchemy.engine import make_url

from app.adapters.migrations import (
    READER_ROLE,
    History,
    SchemaBehindError,
    grant_read_access,
    require_current,
    upgrade,
)
from app.config.logs import configure_logging
from app.config.settings import Role, Settings, SettingsError, load_settings, redacted
from app.embedded import EmbeddedError
from app.runtime.bootstrap import read_engine, write_engine

err = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a clear message and exit without a traceback."""
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def settings_or_exit(**overrides: object) -> Settings:
    """Load settings, exiting with the list of bad variables when any is wrong."""
    try:
        settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as error:
        fail(str(error), code=2)
    configure_logging(settings.log_level)
    return settings


def export_urls(settings: Settings) -> None:
    """Hand the resolved settings to child processes (uvicorn workers) through the environment."""
    values = {
        "SHOP_HOST": settings.host,  # the workers check the bind address as `serve` did
        "SHOP_DATABASE_URL": settings.database_url,
        "SHOP_READ_DATABASE_URL": settings.read_database_url,
        "SHOP_REDIS_URL": settings.redis_url,
        "SHOP_ROLE": settings.role.value,
    }
    os.environ.update({name: value for name, value in values.items() if value is not None})


BOTH_STORES = frozenset(History)
READ_STORE = frozenset({History.READ})


async def prepare_stores(
    settings: Settings, embedded: frozenset[History], migrate: bool, uses: frozenset[History]
) -> None:
    """Migrate the stores we may migrate; insist that the others are already current. Only
    the stores the command `uses` are opened."""
    engines = {History.WRITE: write_engine, History.READ: read_engine}
    for history in (h for h in History if h in uses):
        async with engines[history](settings) as engine:
            if migrate or history in embedded:
                await upgrade(engine, history)
            else:
                await require_current(engine, history)
            if history is History.READ and History.READ in embedded:
                await grant_read_access(engine)


def as_reader(settings: Settings, embedded: frozenset[History]) -> Settings:
    """A query-role process on the embedded read store connects as the SELECT-only role."""
    if settings.role is not Role.QUERY or History.READ not in embedded:
        return settings
    assert settings.read_database_url is not None
    url = make_url(settings.read_database_url).set(username=READER_ROLE)
    return settings.model_copy(
        update={"read_database_url": url.render_as_string(hide_password=False)}
    )


def run_prepared(
    settings: Settings,
    embedded: frozenset[History],
    migrate: bool,
    uses: frozenset[History] = BOTH_STORES,
) -> None:
    """Connect, then migrate or check the schemas, turning failures into clear messages."""
    try:
        asyncio.run(prepare_stores(settings, embedded, migrate, uses))
    except SchemaBehindError as error:
        fail(str(error))
    except (OSError, TimeoutError) as error:
        fail(f"cannot reach the database: {redacted(str(error))}")


def _raise_system_exit(signum: int, frame: FrameType | None) -> None:
    # SIGTERM is a normal stop: exit cleanly, letting `finally` blocks release embedded servers.
    raise SystemExit(0)


def guarded(command: Callable[[], None]) -> None:
    """Run a command with SIGTERM handled and known failures reported without a traceback."""
    signal.signal(signal.SIGTERM, _raise_system_exit)
    try:
        command()
    except EmbeddedError as error:
        fail(f"embedded servers: {error}")
