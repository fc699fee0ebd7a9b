"""Everything the write store holds, to prove a refused command wrote nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

WRITE_TABLES = ("customers", "products", "orders", "order_lines", "outbox", "idempotency")
# The relay marks outbox rows published in the background: that is not a command's write.
_COLUMNS = {
    "outbox": "position, event_id, aggregate_type, aggregate_id, aggregate_version, "
    "event_type, schema_version, payload, occurred_at"
}


async def write_store(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every write table, in a stable order (outbox without published_at)."""
    snapshot = {}
    async with engine.connect() as connection:
        for table in WRITE_TABLES:
            columns = _COLUMNS.get(table, "*")
            rows = await connection.execute(text(f"SELECT {columns} FROM {table} ORDER BY 1, 2"))
            snapshot[table] = [tuple(row) for row in rows]
    return snapshot


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
