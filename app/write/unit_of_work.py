"""The PostgreSQL unit of work: one transaction holding a command's rows, events and record.

It comes in two kinds. Locking (`locking=True`): BEGIN, reads that lock what the command will
change, the write statement, COMMIT. Optimistic (`locking=False`), a command's first attempt:
the reads run on their own, without locks or a transaction, and the write statement is the
transaction: it writes everything only if every row the command read is unchanged, and else
fails with serialization_failure (app/write/write_set.py), on which the executor runs the
command again, locking. A placeOrder takes three round trips instead of five, and holds no
row lock while the API process works between them; one, if the process remembers its
customer and products (`memory`, app/write/remembered.py), which the write statement checks
as it checks what was read.

It runs on a plain asyncpg pool, not SQLAlchemy: a command is a handful of fixed statements,
each prepared once per connection, and SQLAlchemy's work per statement (building the cache
key, binding, the greenlet hop, the result proxy) was over a third of a command's CPU.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType

import asyncpg

from app.adapters.postgres import unavailable
from app.events import RecordedEvent
from app.events.consistency_token import AggregateVersion
from app.write import outbox, write_set
from app.write.domain.aggregate import Aggregate
from app.write.domain.errors import ErrorCode, Rejected, reject
from app.write.idempotency import IdempotencyRecords
from app.write.remembered import Remembered
from app.write.repositories import CustomerRepository, OrderRepository, ProductRepository

Clock = Callable[[], datetime]

# Unique constraints that back a domain rule, and the error each one means.
_CONSTRAINT_ERRORS = {
    "customers_email_key": (ErrorCode.ALREADY_EXISTS, "a customer with this email exists", "email"),
    "products_sku_key": (ErrorCode.ALREADY_EXISTS, "a product with this sku exists", "sku"),
}


def utc_now() -> datetime:
    return datetime.now(UTC)


class PostgresUnitOfWork:
    """Open a write-store transaction, hand out repositories on it, commit all or nothing.

    PostgreSQL out of reach, on connect or mid-statement, leaves it as DatabaseUnavailable."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        clock: Clock = utc_now,
        *,
        locking: bool,
        memory: Remembered | None = None,
    ) -> None:
        self._pool = pool
        self.clock = clock
        self.locking = locking
        self.memory = memory  # what this process last knew (app/write/remembered.py)
        self._connection: asyncpg.Connection | None = None

    async def __aenter__(self) -> PostgresUnitOfWork:
        try:
            self._connection = await self._pool.acquire()
        except Exception as error:
            raise unavailable(error) or error from error
        if self.locking:
            try:
                await self._connection.execute("BEGIN")
            except BaseException as error:
                await self._release()
                if isinstance(error, Exception):
                    raise unavailable(error) or error from error
                raise
        locking, memory = self.locking, self.memory
        self.customers = CustomerRepository(self._connection, locking=locking, memory=memory)
        self.products = ProductRepository(self._connection, locking=locking, memory=memory)
        self.orders = OrderRepository(self._connection, locking=locking)
        self.idempotency = IdempotencyRecords(self._connection, locking=locking)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            connection = self._connection
            if connection is not None and connection.is_in_transaction():
                with contextlib.suppress(Exception):  # a lost connection rolls back by itself
                    await connection.execute("ROLLBACK")
        finally:
            await self._release()
        lost = unavailable(error) if isinstance(error, Exception) else None
        if lost is not None and lost is not error:
            raise lost from error

    async def _release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            # A broken connection is closed by the pool and replaced on the next acquire.
            await self._pool.release(connection)

    @property
    def remembered(self) -> bool:
        """Whether what the command decided on came in part from this process's memory, not
        from the store (products: customers never change)."""
        return self.products.from_memory

    def touched(self) -> list[Aggregate]:
        """Every aggregate the command loaded or created, in that order."""
        return [*self.customers.seen, *self.products.seen, *self.orders.seen]

    def produced(self) -> list[AggregateVersion]:
        """Each aggregate version the pending events of the command will create."""
        return outbox.produced(self.touched())

    async def commit(self) -> list[RecordedEvent]:
        """Write the aggregates, their events and the idempotency record, then commit; return
        the events stored. Unlocked, asyncpg's SerializationError if a row read has changed
        meanwhile or a concurrent command recorded the same commandId; nothing is written."""
        assert self._connection is not None, "the unit of work is not open"
        events = outbox.record(self.touched(), self.clock())
        parameters = write_set.parameters(
            self.customers.changes(),
            self.products.changes(),
            self.orders.changes(),
            write_set.columns(write_set.EVENTS, outbox.rows(events)),
            self.idempotency.changes(),
        )
        try:
            if any(parameters):  # a replay writes nothing
                await self._connection.execute(write_set.WRITE, *parameters)
            if self.locking:
                await self._connection.execute("COMMIT")
        except BaseException as error:
            self._forget(conflicted=isinstance(error, asyncpg.SerializationError))
            if isinstance(error, asyncpg.UniqueViolationError):
                raise _translate(error) from error
            raise
        if self.memory is not None:
            self.memory.keep_products(self.products.as_written())
            self.memory.keep_customers(self.customers.as_written())
            if self.remembered:
                self.memory.settled(conflicted=False)
        return events

    def _forget(self, *, conflicted: bool) -> None:
        """The write failed: what this process remembers of its products may be stale."""
        if self.memory is None:
            return
        self.memory.forget_products(row[0] for row in self.products.as_written())
        if self.remembered:
            self.memory.settled(conflicted=conflicted)


def _translate(error: asyncpg.UniqueViolationError) -> Rejected | asyncpg.UniqueViolationError:
    constraint = getattr(error, "constraint_name", None)
    if constraint in _CONSTRAINT_ERRORS:
        code, message, field = _CONSTRAINT_ERRORS[constraint]
        return reject(code, message, field)
    return error
