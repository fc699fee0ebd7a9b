"""PostgreSQL engines for the write and read stores (SQLAlchemy 2 async over asyncpg)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def asyncpg_url(url: str) -> str:
    """Turn a libpq-style URL (postgres://, postgresql://) into SQLAlchemy's asyncpg form."""
    scheme, _, rest = url.partition("://")
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+asyncpg://{rest}"
    return url


def create_engine(url: str, *, pool_size: int, connect_timeout_s: float) -> AsyncEngine:
    """An engine whose connections fail fast when the server is away and recover when it returns."""
    return create_async_engine(
        make_url(asyncpg_url(url)),
        pool_size=pool_size,
        max_overflow=pool_size,
        # Waiting for a pooled connection under load is normal; failing fast is for a dead
        # server, which the connect timeout covers.
        pool_timeout=max(30.0, connect_timeout_s),
        # A pooled connection may be dead after a server restart; check it on checkout.
        pool_pre_ping=True,
        connect_args={
            "timeout": connect_timeout_s,
            # No statement of ours takes a minute: one that does is stuck (a lock held by a
            # transaction nobody will finish), and failing lets its loop recover.
            "command_timeout": 60,
            "server_settings": {
                "timezone": "UTC",
                # A transaction left open by a killed task must not hold its locks forever.
                "idle_in_transaction_session_timeout": "60000",
            },
        },
    )


async def ping(engine: AsyncEngine) -> None:
    """Raise unless the database answers a trivial query."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


def describe(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    return make_url(asyncpg_url(url)).render_as_string(hide_password=True)


def driver_error(error: DBAPIError) -> BaseException | None:
    """The asyncpg exception behind a SQLAlchemy error (it carries the SQLSTATE and constraint)."""
    return error.orig.__cause__ if error.orig is not None else None
