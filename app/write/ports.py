"""What the executor and the handlers need of storage, as protocols.

PostgreSQL provides them in production (app/write/unit_of_work.py); any other implementation,
such as an in-memory one for tests, can stand in for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self
from uuid import UUID

from app.events.consistency_token import AggregateVersion
from app.write.commands import Command
from app.write.domain.customer import Customer
from app.write.domain.order import Order
from app.write.domain.product import Product


class Customers(Protocol):
    """Customers, as one command sees them."""

    def add(self, customer: Customer) -> None: ...

    async def get(self, customer_id: UUID) -> Customer | None: ...

    async def email_taken(self, email: str) -> bool: ...


class Products(Protocol):
    """Products, as one command sees them."""

    def add(self, product: Product) -> None: ...

    async def sku_taken(self, sku: str) -> bool: ...

    async def reserved_units(self, product_id: UUID) -> int:
        """Units of the product held by orders that may still be cancelled."""
        ...

    async def lock(self, product_ids: Iterable[UUID]) -> dict[UUID, Product]:
        """Load the products that exist; others cannot change them before this command's
        commit (they wait for its locks, or its commit fails and it runs again)."""
        ...


class Orders(Protocol):
    """Orders, as one command sees them."""

    def add(self, order: Order) -> None: ...

    async def owner(self, order_id: UUID) -> UUID | None:
        """The customer who placed the order, or None if there is no such order."""
        ...

    async def lock(self, order_id: UUID) -> Order | None:
        """Load the order, if it exists; others cannot change it before this command's
        commit (as for products)."""
        ...


class CommandResults(Protocol):
    """The results of earlier commands that carried a commandId, kept per caller
    (`caller_identity`): each caller's commandIds are their own."""

    async def find(self, caller: str, command: Command) -> dict[str, Any] | None:
        """The first result of this caller's command, None if its id is new to the caller;
        Rejected if the caller reused it."""
        ...

    def remember(
        self, caller: str, command: Command, result: dict[str, Any], now: datetime
    ) -> None:
        """Keep the result of this command (at commit, with its writes), to hand back when the
        caller sends its id again."""
        ...


class UnitOfWork(Protocol):
    """One command's transaction: repositories on it, committed all at once or not at all."""

    @property
    def customers(self) -> Customers: ...

    @property
    def products(self) -> Products: ...

    @property
    def orders(self) -> Orders: ...

    @property
    def idempotency(self) -> CommandResults: ...

    def clock(self) -> datetime: ...

    @property
    def remembered(self) -> bool:
        """Whether the command decided in part on what the process remembers rather than on
        the store (app/write/remembered.py): then a refusal is not final."""
        ...

    def produced(self) -> list[AggregateVersion]:
        """Each aggregate version the command's events will create."""
        ...

    async def commit(self) -> object:
        """Write every change and event, then commit."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Roll back whatever was not committed, and let go of the connection."""
        ...
