"""The event log staged in the read store, for a rebuild to fold inside PostgreSQL.

The write store's log is copied slice by slice (binary COPY, one slice of positions at a time)
into an unlogged table of the rebuild's own schema in the read store; each projection's fold
then reads a slice as its relation of events. No event is decoded in Python: PostgreSQL moves
and folds them. The read and write stores may be different servers, so the log is copied
rather than read across.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.events import EVENT_TYPES
from app.events.serialization import upcast_json
from app.projections.base import Projection

Params = dict[str, Any]

_COLUMNS = (
    "position, aggregate_type, aggregate_id, aggregate_version, event_type, schema_version, "
    "occurred_at, payload"
)
_KNOWN = {event_type.type_name(): event_type.schema_version for event_type in EVENT_TYPES}
# The current version of a row's event type, 0 for a type this code does not know.
_CURRENT_SQL = (
    "CASE event_type "
    + " ".join(f"WHEN '{name}' THEN {version}" for name, version in sorted(_KNOWN.items()))
    + " ELSE 0 END"
)


class UnreadableEvent(Exception):
    """The log holds an event type or schema version this code does not know."""


@dataclass(frozen=True)
class Slice:
    """Positions (first, last] of the log, and how many events of the followed types."""

    first: int
    last: int
    events: int


@dataclass(frozen=True)
class FoldStatements:
    fold: TextClause  # the projection's fold over a slice
    guard: TextClause  # its guard filled from the whole staged log


class StagedLog:
    """The followed part of the log, copied into `schema`.event_log a slice at a time."""

    def __init__(self, schema: str, aggregate_types: Collection[str], slice_size: int) -> None:
        self.schema = schema
        self.table = f'"{schema}".event_log'
        self.latest = f'"{schema}".latest_versions'
        self.aggregate_types = sorted(aggregate_types)
        self.slice_size = slice_size
        self._statements: dict[str, FoldStatements] = {}

    async def create(self, read: AsyncConnection) -> None:
        await read.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
        await read.execute(text(f"DROP TABLE IF EXISTS {self.table}, {self.latest}"))
        await read.execute(
            text(
                f"CREATE UNLOGGED TABLE {self.table} (position bigint PRIMARY KEY, "
                "aggregate_type text NOT NULL, aggregate_id uuid NOT NULL, "
                "aggregate_version integer NOT NULL, event_type text NOT NULL, "
                "schema_version smallint NOT NULL, occurred_at timestamptz NOT NULL, "
                "payload jsonb NOT NULL)"
            )
        )

    async def drop(self, read: AsyncConnection) -> None:
        await read.execute(text(f"DROP TABLE IF EXISTS {self.table}, {self.latest}"))

    async def summarize(self, read: AsyncConnection) -> None:
        """Each staged aggregate's last version and event count, once for every guard."""
        await read.execute(
            text(
                f"CREATE UNLOGGED TABLE {self.latest} AS SELECT aggregate_type, aggregate_id, "
                "max(aggregate_version) AS version, count(*) AS events "
                f"FROM {self.table} GROUP BY aggregate_type, aggregate_id"
            )
        )

    async def slices(self, write: AsyncEngine, read: AsyncEngine) -> AsyncGenerator[Slice, None]:
        """Copy the log a slice at a time and yield each slice once it is staged."""
        async with write.connect() as source, read.connect() as target:
            source_raw = await _driver(source)
            target_raw = await _driver(target)
            after = 0
            while True:
                row = await source_raw.fetchrow(
                    "SELECT max(position) AS last, count(*) AS events FROM (SELECT position "
                    "FROM outbox WHERE position > $1 AND aggregate_type = ANY($2) "
                    "ORDER BY position LIMIT $3) s",
                    after, self.aggregate_types, self.slice_size,
                )  # fmt: skip
                if row is None or not row["events"]:
                    return
                staged = Slice(after, row["last"], row["events"])
                await self._copy(source_raw, target_raw, staged)
                # The planner's statistics, or it takes the slice for a few rows and joins
                # it by nested loops.
                await target_raw.execute(f"ANALYZE {self.table}")
                await self._upcast(target_raw, staged)
                await self._check_versions(target_raw, staged)
                yield staged
                after = staged.last

    async def _copy(
        self, source: asyncpg.Connection, target: asyncpg.Connection, part: Slice
    ) -> None:
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=16)

        async def produce() -> None:
            try:
                await source.copy_from_query(
                    f"SELECT {_COLUMNS} FROM outbox WHERE position > $1 AND position <= $2 "
                    "AND aggregate_type = ANY($3::text[])",
                    part.first, part.last, self.aggregate_types,
                    output=chunks.put, format="binary",
                )  # fmt: skip
            finally:
                await chunks.put(None)

        async def consume() -> AsyncIterator[bytes]:
            while (chunk := await chunks.get()) is not None:
                yield chunk

        async with asyncio.TaskGroup() as group:
            group.create_task(produce())
            group.create_task(
                target.copy_to_table(
                    "event_log", source=consume(), schema_name=self.schema, format="binary"
                )
            )

    async def _upcast(self, target: asyncpg.Connection, part: Slice) -> int:
        """Raise the slice's events of older shapes to their type's current one, in the staged
        copy (the log itself stays as it was written); how many there were. Each goes through
        its type's upcasts in Python, as a live entry does: one definition of each change."""
        rows = await target.fetch(
            f"SELECT position, event_type, schema_version, payload::text AS payload "
            f"FROM {self.table} WHERE position > $1 AND position <= $2 "
            f"AND schema_version < {_CURRENT_SQL}",
            part.first, part.last,
        )  # fmt: skip
        if rows:
            await target.execute(
                f"UPDATE {self.table} SET payload = u.payload::jsonb, schema_version = u.version "
                "FROM unnest($1::bigint[], $2::text[], $3::smallint[]) AS u(position, payload, "
                f"version) WHERE {self.table}.position = u.position",
                [row["position"] for row in rows],
                [upcast_json(r["event_type"], r["schema_version"], r["payload"]) for r in rows],
                [_KNOWN[row["event_type"]] for row in rows],
            )  # fmt: skip
        return len(rows)

    async def _check_versions(self, target: asyncpg.Connection, part: Slice) -> None:
        """Refuse an event this code cannot read, naming it; never skip it."""
        rows = await target.fetch(
            f"SELECT event_type, schema_version, min(position) AS position FROM {self.table} "
            "WHERE position > $1 AND position <= $2 GROUP BY 1, 2 ORDER BY 3",
            part.first, part.last,
        )  # fmt: skip
        for row in rows:
            known = _KNOWN.get(row["event_type"])
            if known != row["schema_version"]:
                reads = "no such type" if known is None else f"this code reads up to v{known}"
                raise UnreadableEvent(
                    f"the event log holds {row['event_type']} schema version "
                    f"{row['schema_version']} at position {row['position']} ({reads})"
                )

    def statements(self, projection: Projection) -> FoldStatements:
        """The projection's fold over a staged slice (bound as :first and :last), and its
        guard filled from the whole staged log."""
        found = self._statements.get(projection.name)
        if found is None:
            handled = ", ".join(f"'{name}'" for name in sorted(projection.handled_type_names))
            followed = ", ".join(f"'{name}'" for name in sorted(projection.aggregate_types))
            events = (
                "SELECT aggregate_id, aggregate_version AS version, event_type, occurred_at, "
                f"payload FROM {self.table} WHERE position > :first AND position <= :last "
                f"AND event_type IN ({handled})"
            )
            found = self._statements[projection.name] = FoldStatements(
                text(projection.fold_over(events, keys=False)),
                # Once, into the empty guard, from `latest`; returns how many events of the
                # projection's aggregates the log held.
                text(
                    f"WITH mine AS (SELECT * FROM {self.latest} WHERE aggregate_type IN "
                    f'({followed})), filled AS (INSERT INTO "{projection.applied.name}" '
                    "(aggregate_id, version) SELECT aggregate_id, version FROM mine "
                    "ORDER BY aggregate_id) SELECT coalesce(sum(events), 0) FROM mine"
                ),
            )
        return found


async def _driver(connection: AsyncConnection) -> asyncpg.Connection:
    raw = await connection.get_raw_connection()
    driver: asyncpg.Connection = raw.driver_connection
    return driver
