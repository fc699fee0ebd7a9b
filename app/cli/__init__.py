"""The ``shop`` command line."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Annotated

import typer
import uvicorn

from app.cli.common import (
    as_reader,
    err,
    export_urls,
    fail,
    guarded,
    run_prepared,
    settings_or_exit,
)
from app.cli.operations import dlq_cli, projections_cli
from app.cli.stores import resolved_stores
from app.config.settings import Role, Settings
from app.graphql.ids import parse_id
from app.runtime.bootstrap import open_stores
from app.runtime.heap import freeze_startup_heap
from app.runtime.pipeline_process import pipeline_process
from app.security.principal import UserRole

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
    """Serve GraphQL at /graphql; role `all` also runs the relay and projectors (as a child
    process, `shop worker`; SHOP_PIPELINE_PROCESS=false: on the API's event loop)."""
    settings = settings_or_exit(host=host, port=port, role=role, workers=workers)

    def run() -> None:
        from app.web.asgi import server_options

        with resolved_stores(settings) as (resolved, embedded):
            run_prepared(resolved, embedded, migrate=False)
            resolved = as_reader(resolved, embedded)
            export_urls(resolved)
            with pipeline_process(resolved):
                uvicorn.run(
                    "app.web.asgi:create_app",
                    factory=True,
                    host=resolved.host,
                    port=resolved.port,
                    workers=resolved.workers,
                    loop="uvloop",
                    log_config=None,
                    log_level=resolved.log_level,
                    lifespan="on",
                    **server_options(resolved),
                )

    guarded(run)


@cli.command()
def worker() -> None:
    """Run the outbox relay and the projectors until stopped."""
    from app.runtime.worker import pipeline_loops, running_loops

    settings = settings_or_exit()

    async def work(resolved: Settings) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with open_stores(resolved) as stores, running_loops(pipeline_loops(stores)):
            if resolved.gc_freeze:
                freeze_startup_heap()
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
        with resolved_stores(settings, redis=False) as (resolved, embedded):
            run_prepared(resolved, embedded, migrate=True)
            err.print("write and read databases are at the latest schema")

    guarded(run)


@cli.command()
def token(
    role: Annotated[UserRole, typer.Option(help="The token's role.")],
    customer: Annotated[
        str | None, typer.Option(help="The customer id (the subject of a customer token).")
    ] = None,
    ttl: Annotated[
        int, typer.Option(help="Seconds until it expires.", min=60, max=366 * 86400)
    ] = 3600,
) -> None:
    """Mint a bearer token for local use, signed with SHOP_JWT_SECRET (printed to stdout)."""
    from app.security.tokens import mint_token

    settings = settings_or_exit()
    if settings.jwt_secret is None:
        fail(
            "SHOP_JWT_SECRET is not set. Without it (and without SHOP_JWT_JWKS_URL) the "
            "service runs open and needs no token; set it, to the server's value, to mint one."
            if settings.jwt_jwks_url is None
            else "the service checks tokens against SHOP_JWT_JWKS_URL: mint them with that "
            "identity provider, not here",
            code=2,
        )
    if role is UserRole.CUSTOMER:
        if customer is None or parse_id(customer) is None:
            fail("a customer token needs --customer <the customer's id (a UUID)>", code=2)
        subject = str(parse_id(customer))
    else:
        if customer is not None:
            fail("--customer is only for --role customer", code=2)
        subject = "admin"
    secret = settings.jwt_secret.get_secret_value()
    issued = mint_token(
        secret, role, subject, ttl, audience=settings.jwt_audience, issuer=settings.jwt_issuer
    )
    sys.stdout.write(issued + "\n")


@cli.command("export-schema")
def export_schema() -> None:
    """Print the GraphQL schema (SDL)."""
    from app.schema import schema

    sys.stdout.write(schema.as_str() + "\n")


def main() -> None:
    """Entry point of the `shop` console script."""
    cli()
