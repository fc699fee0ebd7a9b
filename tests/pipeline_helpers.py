"""Waiting on the pipeline in tests, and comparing read models with a rebuild."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.projections.consistency import wait_until_applied
from app.projections.registry import PROJECTIONS
from app.services import Services

READ_TABLES = ("order_view", "customer_summary", "product_catalogue", "daily_sales")


async def caught_up(services: Services, token: str, timeout_s: float = 30) -> None:
    """Fail unless every projection concerned applies the token's events in time."""
    result = await wait_until_applied(
        services.read_engine, services.changes, token, PROJECTIONS, timeout_s
    )
    assert result.caught_up, f"projections {result.projections} did not catch up"


async def read_models(engine: AsyncEngine, schema: str = "public") -> dict[str, list[Any]]:
    """Every row of every read table, in key order."""
    tables = {}
    async with engine.connect() as connection:
        for table in READ_TABLES:
            rows = await connection.execute(text(f'SELECT * FROM "{schema}"."{table}" ORDER BY 1'))
            tables[table] = [tuple(row) for row in rows]
    return tables
