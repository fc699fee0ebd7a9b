"""What a projection is: a name, the events it follows, its tables, and the SQL that folds
events into them.

A projection is set-based: its `fold` is one SQL statement over a relation of events, which
writes every row the events change and returns the keys of those rows. The same statement
applies a live batch (the batch's events bound as arrays) and a rebuild (the whole log,
staged in the read store a slice at a time), so there is one definition of each read model,
and no Python runs per event or per row.
"""

from __future__ import annotations

import re
from abc import ABC
from collections.abc import Sequence
from functools import cache, cached_property
from typing import Any, ClassVar

from sqlalchemy import Table, TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.events import Event
from app.events.serialization import EventRecord
from app.projections.change_keys import ChangedKeys
from app.projections.names import ProjectionName
from app.projections.tables import APPLIED

# A live batch as the relation `events` a fold reads: one row per event, in no given order.
# The payload comes as text and is parsed by PostgreSQL.
BOUND_EVENTS = (
    "SELECT aggregate_id, version, event_type, occurred_at, payload::jsonb AS payload "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:versions AS integer[]), CAST(:types AS text[]), "
    "CAST(:times AS timestamptz[]), CAST(:payloads AS text[])) "
    "AS e(aggregate_id, version, event_type, occurred_at, payload)"
)

# A relation a fold defines: `name AS (` or `name(columns) AS (` at the start of a line.
_FOLD_RELATION = re.compile(r"^(\w+)(?:\([\w, ]+\))? AS \(", re.MULTILINE)


class Projection(ABC):
    """A read model kept from events.

    `aggregate_types`: whose events it follows; its version guard advances on every event of
    those aggregates, handled or not, so "applied up to version v" is well defined for the
    consistency tokens. `handles`: the event types its fold reads. `tables`: the read tables
    it owns, rebuilt and swapped together with its guard.

    `fold`: the statement's body after `WITH events AS (…),`: common table expressions over
    `events` (aggregate_id, version, event_type, occurred_at, payload jsonb) that write the
    tables, the last one `changed(key)`, the changed keys as text (`change_keys` form), which
    PostgreSQL computes only when they are asked for (a rebuild does not). Folding any split
    of a history into batches, applied in order, must give the same rows as folding it whole;
    rows are written in key order, so two folds touching the same rows cannot deadlock.
    Tables are named without a schema: a rebuild points them at its shadow copies.
    """

    name: ClassVar[ProjectionName]
    aggregate_types: ClassVar[frozenset[str]]
    handles: ClassVar[frozenset[type[Event]]]
    tables: ClassVar[tuple[Table, ...]]
    fold: ClassVar[str]

    @cached_property
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

    def fold_over(self, events: str, *, keys: bool, also: str = "") -> str:
        """The fold as one statement over `events`, a SELECT of the relation's columns; it
        returns the changed keys, or nothing. `also`: more data-modifying CTEs for the same
        statement (", name AS (…)"), such as the applier's guard advance."""
        result = "key FROM changed" if keys else "NULL"
        return f"WITH events AS ({events}), {self.fold}{also} SELECT {result}"

    def fold_prefixed(self, prefix: str) -> str:
        """The fold with the names of its relations (`events` and its own expressions) given
        `prefix`, so that several projections' folds fit in one statement."""
        names = ("events", *_FOLD_RELATION.findall(self.fold))
        return re.sub(rf"\b({'|'.join(names)})\b", rf"{prefix}\1", self.fold)

    async def apply(
        self, connection: AsyncConnection, events: Sequence[EventRecord]
    ) -> ChangedKeys:
        """Apply new events in the caller's transaction and return the keys that changed.

        The events are not applied yet, of types in `handles`, and in version order per
        aggregate; events of different aggregates may come in any order.
        """
        if not events:
            return set()
        rows = await connection.execute(_live_fold(self), bound_events(events))
        return set(rows.scalars())


def bound_events(events: Sequence[EventRecord]) -> dict[str, list[Any]]:
    """The parameters of BOUND_EVENTS for these events."""
    return {
        "ids": [e.aggregate_id for e in events],
        "versions": [e.aggregate_version for e in events],
        "types": [e.event_type for e in events],
        "times": [e.occurred_at for e in events],
        "payloads": [e.payload_json for e in events],
    }


@cache
def _live_fold(projection: Projection) -> TextClause:
    return text(projection.fold_over(BOUND_EVENTS, keys=True))
