"""The PostgreSQL unit of work: one transaction holding a command's rows, events and record."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from app.adapters.postgres import driver_error
from app.events import RecordedEvent
from app.events.consistency_token import AggregateVersion
from app.write import outbox, write_set
from app.write.domain.aggregate import Aggregate
from app.write.domain.errors import ErrorCode, Rejected, reject
from app.write.idempotency import IdempotencyRecords
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
    """Open a write-store transaction, hand out repositories on it, commit all or nothing."""

    def __init__(self, engine: AsyncEngine, clock: Clock = utc_now) -> None:
        self._engine = engine
        self.clock = clock
        self._connection: AsyncConnection | None = None
        self._transaction: AsyncTransaction | None = None

    async def __aenter__(self) -> PostgresUnitOfWork:
        self._connection = await self._engine.connect()
        self._transaction = await self._connection.begin()
        self.customers = CustomerRepository(self._connection)
        self.products = ProductRepository(self._connection)
        self.orders = OrderRepository(self._connection)
        self.idempotency = IdempotencyRecords(self._connection)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._connection is not None
        assert self._transaction is not None
        try:
            if self._transaction.is_active:
                await self._transaction.rollback()
        finally:
            await self._connection.close()

    @property
    def connection(self) -> AsyncConnection:
        assert self._connection is not None, "the unit of work is not open"
        return self._connection

    def touched(self) -> list[Aggregate]:
        """Every aggregate the command loaded or created, in that order."""
        return [*self.customers.seen, *self.products.seen, *self.orders.seen]

    def produced(self) -> list[AggregateVersion]:
        """Each aggregate version the command's events will create."""
        return outbox.produced(self.touched())

    async def commit(self) -> list[RecordedEvent]:
        """Write the aggregates and their events, then commit; return the events stored."""
        assert self._transaction is not None
        events = outbox.record(self.touched(), self.clock())
        try:
            await self.connection.execute(
                write_set.WRITE,
                write_set.parameters(
                    self.customers.changes(),
                    self.products.changes(),
                    self.orders.changes(),
                    write_set.columns(write_set.EVENTS, outbox.rows(events)),
                ),
            )
            await self._transaction.commit()
        except IntegrityError as error:
            raise _translate(error) from error
        return events


def _translate(error: IntegrityError) -> Rejected | IntegrityError:
    constraint = getattr(driver_error(error), "constraint_name", None)
    if constraint in _CONSTRAINT_ERRORS:
        code, message, field = _CONSTRAINT_ERRORS[constraint]
        return reject(code, message, field)
    return error
