"""PostgreSQL engines for the write and read stores (SQLAlchemy 2 async over asyncpg)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from asyncpg.exceptions import (
    CannotConnectNowError,
    PostgresConnectionError,
    TooManyConnectionsError,
)
from sqlalchemy import event, text
from sqlalchemy.engine import Dialect, ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

log = logging.getLogger("app.adapters")
T = TypeVar("T")


class DatabaseUnavailable(ConnectionError):
    """PostgreSQL cannot be reached, did not answer in time, or dropped the connection.

    One type for what asyncpg and SQLAlchemy report in many (OSError, TimeoutError, an
    invalidated DBAPIError), so callers can say "the store is unavailable" and nothing more.
    It is an OSError, so loops that pause on OSError pause on it too.
    """


# What asyncpg's connect raises when the server is away, starting, stopping or full:
# SQLAlchemy passes these on as they are (they are not DBAPI errors yet).
_CONNECT_FAILURES = (
    OSError,  # refused, reset, unreachable, unknown host
    TimeoutError,  # no answer within the connect timeout
    PostgresConnectionError,
    CannotConnectNowError,
    TooManyConnectionsError,
)


def asyncpg_url(url: str) -> str:
    """Turn a libpq-style URL (postgres://, postgresql://) into SQLAlchemy's asyncpg form."""
    scheme, _, rest = url.partition("://")
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+asyncpg://{rest}"
    return url


def libpq_url(url: str) -> str:
    """A URL in SQLAlchemy's asyncpg form (or libpq's) as asyncpg's own connect takes it."""
    scheme, _, rest = url.partition("://")
    if scheme.startswith("postgresql+") or scheme == "postgres":
        return f"postgresql://{rest}"
    return url


COMPILED_CONNECT_TIMEOUT_S = 1.0
STATEMENT_CACHE_SIZE = 1000
"""Prepared statements kept per connection of the read pool: one per query shape in use."""

_SERVER_SETTINGS = {
    "timezone": "UTC",
    # A transaction left open by a killed task must not hold its locks forever.
    "idle_in_transaction_session_timeout": "60000",
}


async def create_pool(url: str, *, pool_size: int, connect_timeout_s: float) -> asyncpg.Pool:
    """A plain asyncpg pool, no SQLAlchemy in between: the compiled read path (one prepared
    statement per request) and the command path (app/write/unit_of_work.py) use one each.
    Connections open on first use, like the engines'; one that died (a server restart) fails
    its statement and is replaced by the next acquire. Nothing is reset on release: neither
    path leaves a SET, LISTEN, session lock or cursor behind (transactions end before)."""
    pool = asyncpg.create_pool(
        libpq_url(url),
        min_size=0,
        max_size=pool_size,
        timeout=connect_timeout_s,
        command_timeout=60,
        statement_cache_size=STATEMENT_CACHE_SIZE,
        server_settings=_SERVER_SETTINGS,
        # asyncpg resets a connection's session on each release, a round trip per request.
        # The compiled read path leaves nothing to reset: no SET, LISTEN, lock or cursor.
        reset=_nothing_to_reset,
    )
    return await pool


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    return None


# What asyncpg raises when the connection broke mid-statement or the server is going away.
_LOST = (
    *_CONNECT_FAILURES,
    asyncpg.InterfaceError,  # the connection is closed
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
)


def unavailable(error: BaseException) -> DatabaseUnavailable | None:
    """The error as DatabaseUnavailable if it means PostgreSQL cannot be reached (on connect
    or mid-statement) from a plain asyncpg pool; None for any other error."""
    if isinstance(error, DatabaseUnavailable):
        return error
    if isinstance(error, _LOST):
        reason = "no answer in time" if isinstance(error, TimeoutError) else repr(error)
        return DatabaseUnavailable(f"PostgreSQL unavailable: {reason}")
    return None


def create_engine(url: str, *, pool_size: int, connect_timeout_s: float) -> AsyncEngine:
    """An engine whose connections fail fast when the server is away and recover when it returns."""
    engine = create_async_engine(
        make_url(asyncpg_url(url)),
        pool_size=pool_size,
        max_overflow=pool_size,
        # Waiting for a pooled connection under load is normal; failing fast is for a dead
        # server, which the connect timeout covers.
        pool_timeout=max(10.0, 2 * connect_timeout_s),  # a full pool fails fast too
        connect_args={
            "timeout": connect_timeout_s,
            # No statement of ours takes a minute: one that does is stuck (a lock held by a
            # transaction nobody will finish), and failing lets its loop recover.
            "command_timeout": 60,
            "server_settings": _SERVER_SETTINGS,
        },
    )
    event.listen(engine.sync_engine, "do_connect", _connect)
    event.listen(engine.sync_engine, "handle_error", _disconnected)
    event.listen(engine.sync_engine, "checkin", _checked_in)
    event.listen(engine.sync_engine, "checkout", _ping_if_idle)
    return engine


# A pooled connection may be dead after a server restart or a proxy's idle cut. SQLAlchemy's
# pool_pre_ping would check every checkout, and its asyncpg ping is three round trips (BEGIN,
# an empty statement, ROLLBACK): 10 to 15% of a projector's CPU per batch. A connection used
# moments ago is alive, so only one idle longer than this is pinged. One that died in that
# moment fails its statement as a disconnect, which invalidates the whole pool: a restart
# costs the requests already on their way, not the ones after.
PING_AFTER_IDLE_S = 1.0


def _checked_in(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
    # `info` is emptied when its connection is replaced: a new connection is not pinged.
    idle_since = record.info.get("idle_since")
    if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
        return
    try:
        dbapi_connection.ping()
    except Exception as error:
        # The pool discards this connection and checks out (or opens) another.
        raise DisconnectionError(f"pooled connection is dead: {error!r}") from error


def _connect(
    dialect: Dialect, record: ConnectionPoolEntry, cargs: tuple[Any, ...], cparams: dict[str, Any]
) -> Any:
    try:
        return dialect.connect(*cargs, **cparams)
    except _CONNECT_FAILURES as error:
        where = cparams.get("host") or "the default host"
        reason = "no answer in time" if isinstance(error, TimeoutError) else repr(error)
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {where}: {reason}") from error


def _disconnected(context: ExceptionContext) -> BaseException | None:
    # A connection lost mid-statement (a checkout's ping failing is handled by the pool: it
    # discards the connection and opens another).
    if context.is_disconnect:
        return DatabaseUnavailable(f"PostgreSQL connection lost: {context.original_exception}")
    return None


async def ping(engine: AsyncEngine) -> None:
    """Raise unless the database answers a trivial query."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


def driver_error(error: DBAPIError) -> BaseException | None:
    """The asyncpg exception behind a SQLAlchemy error (it carries the SQLSTATE and constraint)."""
    return error.orig.__cause__ if error.orig is not None else None


# SQLSTATEs of a transaction that lost to a concurrent one and was rolled back: a deadlock,
# a serialization failure, a lock it gave up waiting for. The same work may be done again.
_LOST_A_RACE = frozenset({"40001", "40P01", "55P03"})


def lost_a_race(error: BaseException) -> bool:
    """Whether the error, from asyncpg or through SQLAlchemy, is a race lost to another
    transaction (trying again is the remedy), not a fault of the work itself."""
    seen: BaseException | None = error
    for _ in range(4):  # SQLAlchemy's error, its adapted error, asyncpg's
        if seen is None:
            break
        if getattr(seen, "sqlstate", None) in _LOST_A_RACE:
            return True
        seen = seen.orig if isinstance(seen, DBAPIError) else seen.__cause__
    return False


async def retry_lost_races(work: Callable[[], Awaitable[T]], what: str, attempts: int = 5) -> T:
    """Run a transaction's work, again (after a short pause) each time it loses a race,
    at most `attempts` times. Work whose statements lock several tables in an order
    another transaction cannot share (DDL beside live statements) needs it."""
    for attempt in range(1, attempts + 1):
        try:
            return await work()
        except Exception as error:
            if attempt == attempts or not lost_a_race(error):
                raise
            log.warning("%s lost a race (%s); trying again (%d of %d)",
                        what, type(error).__name__, attempt + 1, attempts)  # fmt: skip
            await asyncio.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")
