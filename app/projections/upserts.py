"""What the projections share: batched upserts of rows folded in Python, and the UTC day.

A projection folds a whole batch into one row per key, then writes each table with one
executemany statement. Rows are sent in key order, so two transactions touching the same rows
lock them in the same order and cannot deadlock on each other.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Table, func
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.base import ReadOnlyColumnCollection

from app.events import RecordedEvent
from app.projections.change_keys import ChangedKeys, ChangeKey

Row = dict[str, Any]
Excluded = ReadOnlyColumnCollection[str, Any]
SetClause = Callable[[Table, Excluded], Mapping[str, ColumnElement[Any]]]
K = TypeVar("K", bound=Hashable)


async def fold_and_upsert(
    connection: AsyncConnection,
    events: Sequence[RecordedEvent],
    table: Table,
    fold: Callable[[dict[K, Row], RecordedEvent], None],
    set_clause: SetClause,
    change_key: Callable[[K], ChangeKey],
    key: str = "id",
) -> ChangedKeys:
    """Fold a batch into one row per key, upsert them, and name the rows that changed."""
    rows: dict[K, Row] = {}
    for recorded in events:
        fold(rows, recorded)
    await upsert(connection, table, rows.values(), set_clause, key)
    return {change_key(row_key) for row_key in rows}


def added(table: Table, excluded: Excluded, *columns: str) -> dict[str, ColumnElement[Any]]:
    """Counters: the batch's delta is added to what the row holds."""
    return {name: table.c[name] + excluded[name] for name in columns}


def given_or_kept(table: Table, excluded: Excluded, *columns: str) -> dict[str, ColumnElement[Any]]:
    """Facts set by the row's own events: the batch's value if it has one, else the row's."""
    return {name: func.coalesce(excluded[name], table.c[name]) for name in columns}


def greatest(table: Table, excluded: Excluded, *columns: str) -> dict[str, ColumnElement[Any]]:
    """Maxima (versions, latest times): the larger of both; NULL counts as absent."""
    return {name: func.greatest(table.c[name], excluded[name]) for name in columns}


async def upsert(
    connection: AsyncConnection,
    table: Table,
    rows: Iterable[Row],
    set_clause: SetClause,
    key: str = "id",
) -> None:
    """Insert each row, or merge it into the existing one by `set_clause`; one row per key."""
    ordered = sorted(rows, key=lambda row: row[key])
    if ordered:
        await connection.execute(_upsert_statement(table, set_clause, key), ordered)


@cache
def _upsert_statement(table: Table, set_clause: SetClause, key: str) -> Insert:
    # Built once: making the statement and its cache key for every batch cost more than
    # running it (the rows are executemany parameters, not part of the statement).
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=[key], set_=dict(set_clause(table, statement.excluded))
    )


def utc_day(moment: datetime) -> date:
    """The UTC calendar date of a moment; a naive moment is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.date()
    return moment.astimezone(UTC).date()


def latest(current: datetime | None, candidate: datetime) -> datetime:
    """The later of a maybe-absent moment and another."""
    return candidate if current is None or candidate > current else current
