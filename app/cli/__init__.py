"""The ``shop`` command line."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Annotated

import typer
import uvicorn

from app.bootstrap import open_services
from app.cli.common import (
    as_reader,
    err,
    export_urls,
    guarded,
    run_prepared,
    settings_or_exit,
)
from app.cli.operations import dlq_cli, projections_cli
from app.cli.stores import resolved_stores
from app.settings import Role, Settings

cli = typer.Typer(
    name="shop",
    help="cqrs-shop: a CQRS GraphQL API for an online shop.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
cli.add_typer(projections_cli, name="projections")
cli.add_typer(dlq_cli, name="dlq")


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
            resolved = as_reader(resolved, embedded)
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
