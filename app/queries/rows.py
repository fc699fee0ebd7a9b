"""Single rows of the read tables, by id. An id that cannot exist reads as no row."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, RowMapping, Select, literal_column, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.graphql.ids import parse_id
from app.projections.tables import customer_summary, order_history, order_view, product_catalogue

# Rows at version 0 were made by an order's events before the customer's or product's own
# creation event was applied: they are not there yet as far as anyone reading is concerned.
_CREATED: ColumnElement[int] = literal_column("0")


def order_query(order_id: UUID) -> Select[Any]:
    """The query for one order_view row."""
    return select(order_view).where(order_view.c.id == order_id)


def customer_query(customer_id: UUID) -> Select[Any]:
    """The query for one shown customer_summary row."""
    c = customer_summary.c
    return select(customer_summary).where(c.id == customer_id, c.version > _CREATED)


def product_query(product_id: UUID) -> Select[Any]:
    """The query for one shown product_catalogue row."""
    c = product_catalogue.c
    return select(product_catalogue).where(c.id == product_id, c.version > _CREATED)


async def read_order(engine: AsyncEngine, order_id: str | None) -> RowMapping | None:
    """The order_view row of an order, or None."""
    key = parse_id(order_id)
    return None if key is None else await _one(engine, order_query(key))


async def read_order_history(engine: AsyncEngine, order_id: UUID) -> list[RowMapping]:
    """The order_history rows of an order, oldest first."""
    query = (
        select(order_history)
        .where(order_history.c.order_id == order_id)
        .order_by(order_history.c.version)
    )
    async with engine.connect() as connection:
        return list((await connection.execute(query)).mappings().all())


async def read_customer(engine: AsyncEngine, customer_id: str | None) -> RowMapping | None:
    """The customer_summary row of a registered customer, or None."""
    key = parse_id(customer_id)
    return None if key is None else await _one(engine, customer_query(key))


async def read_product(engine: AsyncEngine, product_id: str | None) -> RowMapping | None:
    """The product_catalogue row of a created product, or None."""
    key = parse_id(product_id)
    return None if key is None else await _one(engine, product_query(key))


async def _one(engine: AsyncEngine, query: Select[Any]) -> RowMapping | None:
    async with engine.connect() as connection:
        result = await connection.execute(query)
        row: RowMapping | None = result.mappings().first()
        return row
