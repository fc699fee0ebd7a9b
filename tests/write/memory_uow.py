"""An in-memory unit of work for tests: the write side's storage protocols without a database.

A MemoryStore holds what is committed. Each MemoryUnitOfWork hands out copies of what it
loads and keeps what is new to itself, so a command that is not committed changes nothing.
Locks and unique constraints are PostgreSQL's business and are not imitated here.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Generic, TypeVar
from uuid import UUID

from app.events import RecordedEvent
from app.events.consistency_token import AggregateVersion
from app.write import outbox
from app.write.commands import Command
from app.write.domain.aggregate import Aggregate
from app.write.domain.customer import Customer
from app.write.domain.order import Order, OrderStatus
from app.write.domain.product import Product
from app.write.idempotency import Remembered, checked_id

A = TypeVar("A", bound=Aggregate)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
_OPEN = (OrderStatus.PLACED, OrderStatus.PAID)  # orders that may still give their stock back


@dataclass
class MemoryStore:
    """What has been committed: aggregates by id, the events stored, remembered results."""

    customers: dict[UUID, Customer] = field(default_factory=dict)
    products: dict[UUID, Product] = field(default_factory=dict)
    orders: dict[UUID, Order] = field(default_factory=dict)
    results: dict[tuple[str, str], Remembered] = field(default_factory=dict)
    events: list[RecordedEvent] = field(default_factory=list)
    commits: int = 0
    locking: list[bool] = field(default_factory=list)  # of each unit of work opened

    def unit_of_work(self, *, locking: bool = True) -> MemoryUnitOfWork:
        """A new unit of work on this store (the executor's factory); `locking` is noted,
        as nothing is shared here to lock."""
        self.locking.append(locking)
        return MemoryUnitOfWork(self)

    def seed(self, *aggregates: Aggregate) -> None:
        """Store aggregates as if committed long ago, without their events."""
        for aggregate in aggregates:
            self.put(aggregate)

    def put(self, aggregate: Aggregate) -> None:
        """Store a copy of the aggregate as it is now, its pending events left out."""
        stored = copy.deepcopy(aggregate)
        stored.pending = []
        if isinstance(stored, Customer):
            self.customers[stored.id] = stored
        elif isinstance(stored, Product):
            self.products[stored.id] = stored
        elif isinstance(stored, Order):
            self.orders[stored.id] = stored
        else:
            raise TypeError(f"no table for {type(stored).__name__}")


class MemoryRepository(Generic[A]):
    """Hands out copies of committed aggregates and remembers every one it handed out or got."""

    def __init__(self, committed: dict[UUID, A]) -> None:
        self.committed = committed
        self.seen: list[Aggregate] = []

    def add(self, aggregate: A) -> None:
        self.seen.append(aggregate)

    def _load(self, aggregate_id: UUID) -> A | None:
        found = self.committed.get(aggregate_id)
        if found is None:
            return None
        loaded = copy.deepcopy(found)
        self.seen.append(loaded)
        return loaded


class MemoryCustomers(MemoryRepository[Customer]):
    async def get(self, customer_id: UUID) -> Customer | None:
        return self._load(customer_id)

    async def email_taken(self, email: str) -> bool:
        return any(customer.email == email for customer in self.committed.values())


class MemoryProducts(MemoryRepository[Product]):
    def __init__(self, committed: dict[UUID, Product], orders: dict[UUID, Order]) -> None:
        super().__init__(committed)
        self.orders = orders

    async def sku_taken(self, sku: str) -> bool:
        return any(product.sku == sku for product in self.committed.values())

    async def reserved_units(self, product_id: UUID) -> int:
        open_orders = (o for o in self.orders.values() if o.status in _OPEN)
        return sum(
            line.quantity
            for order in open_orders
            for line in order.lines
            if line.product_id == product_id
        )

    async def lock(self, product_ids: Iterable[UUID]) -> dict[UUID, Product]:
        loaded = (self._load(product_id) for product_id in sorted(set(product_ids)))
        return {product.id: product for product in loaded if product is not None}


class MemoryOrders(MemoryRepository[Order]):
    async def owner(self, order_id: UUID) -> UUID | None:
        order = self.committed.get(order_id)
        return order.customer_id if order is not None else None

    async def lock(self, order_id: UUID) -> Order | None:
        return self._load(order_id)


class MemoryResults:
    """Remembered command results by (caller, commandId); new ones reach the store only at
    commit."""

    def __init__(self, committed: dict[tuple[str, str], Remembered]) -> None:
        self.committed = committed
        self.new: dict[tuple[str, str], Remembered] = {}

    async def find(self, caller: str, command: Command) -> dict[str, Any] | None:
        remembered = self.committed.get((caller, checked_id(command)))
        return remembered.replay(command) if remembered is not None else None

    def remember(
        self, caller: str, command: Command, result: dict[str, Any], now: datetime
    ) -> None:
        self.new[(caller, checked_id(command))] = Remembered.of(command, result)


class MemoryUnitOfWork:
    """One command's changes, kept apart from the store until commit."""

    remembered = False  # every read is from the store

    def __init__(self, store: MemoryStore, clock: Callable[[], datetime] = lambda: NOW) -> None:
        self.store = store
        self.clock = clock

    async def __aenter__(self) -> MemoryUnitOfWork:
        self.customers = MemoryCustomers(self.store.customers)
        self.products = MemoryProducts(self.store.products, self.store.orders)
        self.orders = MemoryOrders(self.store.orders)
        self.idempotency = MemoryResults(self.store.results)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Nothing to roll back: changes reach the store only at commit."""

    def touched(self) -> list[Aggregate]:
        return [*self.customers.seen, *self.products.seen, *self.orders.seen]

    def produced(self) -> list[AggregateVersion]:
        return outbox.produced(self.touched())

    async def commit(self) -> list[RecordedEvent]:
        events = outbox.record(self.touched(), self.clock())
        for aggregate in self.touched():
            self.store.put(aggregate)
        self.store.results.update(self.idempotency.new)
        self.store.events.extend(events)
        self.store.commits += 1
        return events
