"""What wraps every command: logging, metrics, authorization, the transaction, idempotency."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from asyncpg.exceptions import (
    DeadlockDetectedError,
    SerializationError,
)
from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.postgres import driver_error
from app.security.principal import Principal
from app.write.bus import Accepted, Dispatch, Middleware, Next
from app.write.commands import Command
from app.write.domain.errors import Rejected
from app.write.unit_of_work import UnitOfWork

log = logging.getLogger("app.commands")

Policy = Callable[[Principal | None, Command, UnitOfWork], Awaitable[None]]
_TRANSIENT = (DeadlockDetectedError, SerializationError)
_ATTEMPTS = 3


async def log_commands(dispatch: Dispatch, next: Next) -> Accepted:
    """One log line per command: name, outcome and time, with the request id."""
    started = time.perf_counter()
    try:
        accepted = await next(dispatch)
    except Rejected as rejected:
        codes = ",".join(sorted({error.code.value for error in rejected.errors}))
        log.info("%s rejected (%s) in %.1f ms", dispatch.name, codes, _ms(started))
        raise
    except Exception:
        log.exception("%s failed after %.1f ms", dispatch.name, _ms(started))
        raise
    log.info("%s accepted in %.1f ms", dispatch.name, _ms(started))
    return accepted


class CommandMetrics:
    """Counts and times commands by name and outcome (accepted, the error code, or error)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("command", "outcome")
        self.count = Counter("shop_commands", "Commands dispatched", labels, registry=registry)
        self.latency = Histogram(
            "shop_command_seconds", "Command latency", labels, registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )  # fmt: skip

    async def __call__(self, dispatch: Dispatch, next: Next) -> Accepted:
        started = time.perf_counter()
        outcome = "error"
        try:
            accepted = await next(dispatch)
            outcome = "accepted"
            return accepted
        except Rejected as rejected:
            outcome = rejected.errors[0].code.value.lower()
            raise
        finally:
            self.count.labels(dispatch.name, outcome).inc()
            self.latency.labels(dispatch.name, outcome).observe(time.perf_counter() - started)


def authorization(policy: Policy) -> Middleware:
    """Ask the policy inside the transaction, before idempotency and the handler: a refused
    caller learns nothing, not even an earlier result of the same commandId."""

    async def authorize(dispatch: Dispatch, next: Next) -> Accepted:
        assert dispatch.uow is not None, "authorization runs inside the transaction"
        await policy(dispatch.principal, dispatch.command, dispatch.uow)
        return await next(dispatch)

    return authorize


def transaction(engine: AsyncEngine) -> Middleware:
    """Run the rest in one write-store transaction, committed only if the command is accepted.

    Row locks are always taken in one order, so deadlocks should not happen; if the server
    still reports one (or a serialization failure), the whole command is tried again.
    """

    async def in_transaction(dispatch: Dispatch, next: Next) -> Accepted:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with UnitOfWork(engine) as uow:
                    dispatch.uow = uow
                    accepted = await next(dispatch)
                    await uow.commit()
                    return accepted
            except DBAPIError as error:
                cause = driver_error(error)
                if attempt == _ATTEMPTS or not isinstance(cause, _TRANSIENT):
                    raise
                log.warning("%s: %s, retrying", dispatch.name, type(cause).__name__)
                await asyncio.sleep(0.01 * attempt)
            finally:
                dispatch.uow = None
        raise AssertionError("unreachable")

    return in_transaction


async def idempotent(dispatch: Dispatch, next: Next) -> Accepted:
    """Return the first result of a repeated commandId; refuse the id with another input."""
    uow = dispatch.uow
    assert uow is not None, "idempotency runs inside the transaction"
    if dispatch.command.command_id is None:
        return await next(dispatch)
    earlier = await uow.idempotency.find(dispatch.command)
    if earlier is not None:
        return Accepted.from_json(earlier)
    accepted = await next(dispatch)
    await uow.idempotency.remember(dispatch.command, accepted.to_json(), uow.clock())
    return accepted


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
