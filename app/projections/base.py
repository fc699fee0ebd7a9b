"""What a projection is: a name, the events it follows, its tables, and how events change them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection

from app.events import Event, RecordedEvent
from app.projections.change_keys import ChangedKeys
from app.projections.names import ProjectionName
from app.projections.tables import APPLIED


class Projection(ABC):
    """A read model kept from events.

    `aggregate_types`: whose events it follows; its version guard advances on every event of
    those aggregates, handled or not, so "applied up to version v" is well defined for the
    consistency tokens. `handles`: the event types `apply` is given. `tables`: the read
    tables it owns, rebuilt and swapped together with its guard.
    """

    name: ClassVar[ProjectionName]
    aggregate_types: ClassVar[frozenset[str]]
    handles: ClassVar[frozenset[type[Event]]]
    tables: ClassVar[tuple[Table, ...]]

    @property
    def handled_type_names(self) -> frozenset[str]:
        """The names of the event types in `handles`, as stored and sent."""
        return frozenset(event_type.type_name() for event_type in self.handles)

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
