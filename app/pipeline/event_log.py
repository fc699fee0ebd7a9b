"""Reading the permanent event log (the write store's outbox) for replays and rebuilds.

The read side replays history from here; it shares the table, not the write side's code.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.events.serialization import stream_fields

_COLUMNS = (
    "position, event_id, event_type, schema_version, aggregate_type, aggregate_id, "
    "aggregate_version, occurred_at, payload::text AS payload"
)


@dataclass(frozen=True)
class LoggedEvent:
    """An event as the log holds it, with the stream fields it travels in (the payload as
    PostgreSQL prints the JSON, so nothing is parsed until the event is decoded)."""

    position: int
    fields: dict[str, str]


def _logged(row: Any) -> LoggedEvent:
    return LoggedEvent(
        row.position,
        stream_fields(
            row.event_id, row.event_type, row.schema_version, row.aggregate_type,
            row.aggregate_id, row.aggregate_version, row.occurred_at, row.position, row.payload,
        ),
    )  # fmt: skip


async def read_after(
    connection: AsyncConnection, position: int, limit: int, aggregate_types: Collection[str]
) -> list[LoggedEvent]:
    """Up to `limit` events after `position`, in log order, of the given aggregate types."""
    rows = await connection.execute(
        text(
            f"SELECT {_COLUMNS} FROM outbox WHERE position > :position "
            "AND aggregate_type = ANY(:types) ORDER BY position LIMIT :limit"
        ),
        {"position": position, "limit": limit, "types": list(aggregate_types)},
    )
    return [_logged(row) for row in rows]


async def read_aggregates(
    connection: AsyncConnection, after_versions: dict[UUID, int]
) -> list[LoggedEvent]:
    """Every event of these aggregates past the given versions, in version order each."""
    if not after_versions:
        return []
    rows = await connection.execute(
        text(
            f"SELECT {_COLUMNS} FROM outbox o "
            "JOIN unnest(CAST(:ids AS uuid[]), CAST(:versions AS integer[])) AS w(id, version) "
            "ON o.aggregate_id = w.id AND o.aggregate_version > w.version "
            "ORDER BY o.aggregate_id, o.aggregate_version"
        ),
        {"ids": list(after_versions), "versions": list(after_versions.values())},
    )
    return [_logged(row) for row in rows]


async def count(connection: AsyncConnection, aggregate_types: Sequence[str]) -> int:
    """How many events of these aggregate types the log holds."""
    query = text("SELECT count(*) FROM outbox WHERE aggregate_type = ANY(:types)")
    return int(await connection.scalar(query, {"types": list(aggregate_types)}) or 0)


def unpublished_below(through: str, in_progress: str, not_begun: str) -> str:
    """SQL: the outbox rows at or below position `through` that the relay has not published
    although its cursor is there (see app/pipeline/relay.py). Their transactions had not
    committed when the cursor's snapshot was taken: in progress then (ids `in_progress`, a
    bigint[]), or not begun (ids from `not_begun`, the snapshot's xmax, on); every
    transaction that had ended by then and wrote a row at or below `through` had that row
    published. Found by the outbox_txid index; rows older than the txid column have none and
    are published. The arguments are SQL expressions; given as parameters, PostgreSQL plans
    each call with their values (its custom plans), so it uses that index."""
    return (
        f"SELECT * FROM outbox WHERE txid = ANY({in_progress}) AND position <= {through}"
        f" UNION ALL SELECT * FROM outbox WHERE txid >= {not_begun} AND position <= {through}"
    )


def snapshot_horizon(snapshot: str) -> tuple[list[int], int]:
    """The ids of the transactions in progress in a snapshot, and the first id not yet
    begun, from a pg_snapshot's text (`xmin:xmax:xip,...`)."""
    _, xmax, xip = snapshot.split(":")
    return [int(xid) for xid in xip.split(",") if xid], int(xmax)


_UNPUBLISHED = text(
    "SELECT (SELECT count(*) FROM outbox WHERE position > :through)"
    " + (SELECT count(*) FROM ("
    + unpublished_below(":through", "CAST(:in_progress AS bigint[])", ":not_begun")
    + ") AS below)"
)


async def unpublished(connection: AsyncConnection) -> int:
    """How many committed events wait for the relay."""
    through, snapshot = (
        await connection.execute(text("SELECT through, snapshot FROM relay_cursor"))
    ).one()
    in_progress, not_begun = snapshot_horizon(snapshot)
    parameters = {"through": through, "in_progress": in_progress, "not_begun": not_begun}
    return int(await connection.scalar(_UNPUBLISHED, parameters) or 0)
