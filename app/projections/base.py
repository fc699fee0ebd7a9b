"""What a projection is: a name, the events it follows, its tables, and how events change them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from app.events import RecordedEvent
from app.projections.tables import APPLIED

ChangedKeys = set[str]


def order_key(order_id: object) -> str:
    """The change key announced when an order's read model changed."""
    return f"order:{order_id}"


def customer_orders_key(customer_id: object) -> str:
    """The change key announced when one of a customer's orders changed."""
    return f"customer-orders:{customer_id}"


class Projection(ABC):
    """A read model kept from events.

    `aggregate_types`: whose events it follows; its version guard advances on every event of
    those aggregates, handled or not, so "applied up to version v" is well defined for the
    consistency tokens. `handles`: the event types `apply` is given. `tables`: the read
    tables it owns, rebuilt and swapped together with its guard.
    """

    name: ClassVar[str]
    aggregate_types: ClassVar[frozenset[str]]
    handles: ClassVar[frozenset[str]]
    tables: ClassVar[tuple[Table, ...]]

    @property
    def applied(self) -> Table:
        """The projection's version guard table."""
        return APPLIED[self.name]

    @property
    def all_tables(self) -> tuple[Table, ...]:
        """Everything a rebuild replaces: the read tables and the guard."""
        return (*self.tables, self.applied)

    @abstractmethod
    async def apply(
        self, connection: AsyncConnection, events: Sequence[RecordedEvent]
    ) -> ChangedKeys:
        """Apply new events in the caller's transaction and return the keys that changed.

        The events are not applied yet, of types in `handles`, and in version order per
        aggregate; events of different aggregates may come in any order.
        """
