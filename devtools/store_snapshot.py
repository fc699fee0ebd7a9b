"""Every row of a store's tables, to prove a refused command wrote nothing and to compare
read models with a rebuild; and the event log as the write store holds it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

WRITE_TABLES = ("customers", "products", "orders", "order_lines", "outbox", "idempotency")
# The outbox's own bookkeeping (the writing transaction's id) is not part of a command's write.
_WRITE_COLUMNS = {
    "outbox": "position, event_id, aggregate_type, aggregate_id, aggregate_version, "
    "event_type, schema_version, payload, occurred_at"
}

Rows = dict[str, list[tuple[Any, ...]]]


async def table_rows(
    engine: AsyncEngine,
    tables: Iterable[str],
    *,
    order_by: str = "1",
    columns: Mapping[str, str] | None = None,
) -> Rows:
    """Every row of each table (all its columns, or those `columns` names for it), in
    `order_by` order."""
    snapshot = {}
    async with engine.connect() as connection:
        for table in tables:
            selected = (columns or {}).get(table, "*")
            query = f'SELECT {selected} FROM "{table}" ORDER BY {order_by}'
            snapshot[table] = [tuple(row) for row in await connection.execute(text(query))]
    return snapshot


async def write_store(engine: AsyncEngine) -> Rows:
    """Every row of every write table, in a stable order (outbox without txid)."""
    return await table_rows(engine, WRITE_TABLES, order_by="1, 2", columns=_WRITE_COLUMNS)


async def outbox(engine: AsyncEngine) -> list[dict[str, Any]]:
    """The event log, in position order."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT aggregate_type, aggregate_id, aggregate_version, event_type, payload "
                "FROM outbox ORDER BY position"
            )
        )
        return [dict(row._mapping) for row in rows]
