"""The ``shop`` command line."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Annotated, NoReturn

import typer
import uvicorn
from rich.console import Console

from app.adapters.migrations import History, SchemaBehindError, require_current, upgrade
from app.bootstrap import open_services
from app.cli.stores import resolved_stores
from app.embedded import EmbeddedError
from app.logs import configure_logging
from app.services import Services
from app.settings import Role, Settings, SettingsError, load_settings

cli = typer.Typer(
    name="shop",
    help="cqrs-shop: a CQRS GraphQL API for an online shop.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
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
        "SHOP_DATABASE_URL": settings.database_url,
        "SHOP_READ_DATABASE_URL": settings.read_database_url,
        "SHOP_REDIS_URL": settings.redis_url,
        "SHOP_ROLE": settings.role.value,
    }
    os.environ.update({name: value for name, value in values.items() if value is not None})


async def prepare_stores(services: Services, embedded: frozenset[History], migrate: bool) -> None:
    """Migrate the stores we may migrate; insist that the others are already current."""
    engines = {History.WRITE: services.write_engine, History.READ: services.read_engine}
    for history, engine in engines.items():
        if migrate or history in embedded:
            await upgrade(engine, history)
        else:
            await require_current(engine, history)


def run_prepared(settings: Settings, embedded: frozenset[History], migrate: bool) -> None:
    """Connect, then migrate or check the schemas, turning failures into clear messages."""

    async def prepare() -> None:
        async with open_services(settings) as services:
            await prepare_stores(services, embedded, migrate)

    try:
        asyncio.run(prepare())
    except SchemaBehindError as error:
        fail(str(error))
    except (OSError, TimeoutError) as error:
        fail(f"cannot reach the database: {error}")


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


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (SHOP_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind (SHOP_PORT).")] = None,
    role: Annotated[Role | None, typer.Option(help="What this process serves (SHOP_ROLE).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Server processes (SHOP_WORKERS).", min=1)
    ] = None,
) -> None:
    """Serve GraphQL at /graphql; role `all` also runs the relay and projectors in-process."""
    settings = settings_or_exit(host=host, port=port, role=role, workers=workers)

    def run() -> None:
        with resolved_stores(settings) as (resolved, embedded):
            run_prepared(resolved, embedded, migrate=False)
            export_urls(resolved)
            uvicorn.run(
                "app.web:create_app",
                factory=True,
                host=resolved.host,
                port=resolved.port,
                workers=resolved.workers,
                loop="uvloop",
                http="httptools",
                log_config=None,
                log_level=resolved.log_level,
                lifespan="on",
                timeout_graceful_shutdown=10,
            )

    guarded(run)


@cli.command()
def worker() -> None:
    """Run the outbox relay and the projectors until stopped."""
    from app.worker import pipeline_loops, running_loops

    settings = settings_or_exit()

    async def work(resolved: Settings) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with open_services(resolved) as services, running_loops(services, pipeline_loops()):
            await stop.wait()

    def run() -> None:
        with resolved_stores(settings) as (resolved, embedded):
            run_prepared(resolved, embedded, migrate=False)
            asyncio.run(work(resolved))

    guarded(run)


@cli.command()
def migrate() -> None:
    """Apply pending migrations to the write and the read database."""
    settings = settings_or_exit()

    def run() -> None:
        with resolved_stores(settings) as (resolved, embedded):
            run_prepared(resolved, embedded, migrate=True)
            err.print("write and read databases are at the latest schema")

    guarded(run)


@cli.command("export-schema")
def export_schema() -> None:
    """Print the GraphQL schema (SDL)."""
    from app.schema import schema

    sys.stdout.write(schema.as_str() + "\n")


def main() -> None:
    """Entry point of the `shop` console script."""
    cli()
