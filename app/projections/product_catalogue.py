"""The product catalogue: each product's facts, its stock, and what orders not cancelled sold.

Order events may come before the product's ProductCreated (they travel on other partitions),
so a batch is folded into one delta per product and upserted: product facts replace, stock and
sales counters add, version takes the greatest. Stock is the initial stock plus restocks, less
what orders reserved, plus what cancellations released; version counts product events only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Table
from sqlalchemy.ext.asyncio import AsyncConnection

from app.events import (
    OrderCancelled,
    OrderPlaced,
    PlacedLine,
    ProductCreated,
    ProductPriceChanged,
    ProductRestocked,
    RecordedEvent,
)
from app.projections.base import Projection
from app.projections.change_keys import ChangedKeys, product_key
from app.projections.names import ProjectionName
from app.projections.tables import product_catalogue
from app.projections.upserts import Excluded, Row, added, fold_and_upsert, given_or_kept, greatest


class ProductCatalogue(Projection):
    name = ProjectionName.PRODUCT_CATALOGUE
    aggregate_types = frozenset({"Product", "Order"})
    handles = frozenset(
        {ProductCreated, ProductPriceChanged, ProductRestocked, OrderPlaced, OrderCancelled}
    )
    tables = (product_catalogue,)

    async def apply(
        self, connection: AsyncConnection, events: Sequence[RecordedEvent]
    ) -> ChangedKeys:
        return await fold_and_upsert(
            connection, events, product_catalogue, _fold, _merge, product_key
        )


def _row(rows: dict[UUID, Row], product_id: UUID) -> Row:
    row = rows.get(product_id)
    if row is None:
        row = rows[product_id] = {
            "id": product_id,
            "sku": None,
            "name": None,
            "price_cents": None,
            "stock": 0,
            "units_sold": 0,
            "revenue_cents": 0,
            "version": 0,
        }
    return row


def _fold(rows: dict[UUID, Row], recorded: RecordedEvent) -> None:
    event = recorded.event
    if isinstance(event, OrderPlaced):
        _sell(rows, event.lines, 1)
    elif isinstance(event, OrderCancelled):
        _sell(rows, event.lines, -1)
    elif isinstance(event, ProductCreated | ProductPriceChanged | ProductRestocked):
        row = _row(rows, event.product_id)
        row["version"] = max(row["version"], recorded.aggregate_version)
        if isinstance(event, ProductCreated):
            row.update(sku=event.sku, name=event.name, price_cents=event.price_cents)
            row["stock"] += event.stock
        elif isinstance(event, ProductPriceChanged):
            row["price_cents"] = event.price_cents
        else:
            row["stock"] += event.quantity


def _sell(rows: dict[UUID, Row], lines: Sequence[PlacedLine], sign: int) -> None:
    """Reserve (sign 1) or release (sign -1) each line's units and count them sold or not."""
    for line in lines:
        row = _row(rows, line.product_id)
        row["stock"] -= sign * line.quantity
        row["units_sold"] += sign * line.quantity
        row["revenue_cents"] += sign * line.total_cents


def _merge(table: Table, excluded: Excluded) -> dict[str, ColumnElement[Any]]:
    return {
        **given_or_kept(table, excluded, "sku", "name", "price_cents"),
        **added(table, excluded, "stock", "units_sold", "revenue_cents"),
        **greatest(table, excluded, "version"),
    }
