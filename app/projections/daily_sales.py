"""Daily sales: one row per UTC day of placement, counting that day's orders.

A cancellation changes the row of the day its order was PLACED on (OrderCancelled repeats
placed_at): ordersPlaced keeps counting it, ordersCancelled counts it, and its items and total
leave itemsSold and revenue. Every column is a counter, so a batch is folded into one delta
per day and added in one upsert.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Table
from sqlalchemy.ext.asyncio import AsyncConnection

from app.events import OrderCancelled, OrderPlaced, RecordedEvent
from app.projections.base import Projection
from app.projections.change_keys import ChangedKeys, daily_sales_key
from app.projections.names import ProjectionName
from app.projections.tables import daily_sales
from app.projections.upserts import Excluded, Row, added, fold_and_upsert, utc_day

_COUNTERS = ("orders_placed", "orders_cancelled", "items_sold", "revenue_cents")


class DailySales(Projection):
    name = ProjectionName.DAILY_SALES
    aggregate_types = frozenset({"Order"})
    handles = frozenset({OrderPlaced, OrderCancelled})
    tables = (daily_sales,)

    async def apply(
        self, connection: AsyncConnection, events: Sequence[RecordedEvent]
    ) -> ChangedKeys:
        return await fold_and_upsert(
            connection, events, daily_sales, _fold, _merge, daily_sales_key, key="day"
        )


def _fold(rows: dict[date, Row], recorded: RecordedEvent) -> None:
    event = recorded.event
    if not isinstance(event, OrderPlaced | OrderCancelled):
        return
    day = utc_day(event.placed_at)
    row = rows.get(day)
    if row is None:
        row = rows[day] = {"day": day, **dict.fromkeys(_COUNTERS, 0)}
    if isinstance(event, OrderPlaced):
        row["orders_placed"] += 1
        row["items_sold"] += event.item_count
        row["revenue_cents"] += event.total_cents
    else:
        row["orders_cancelled"] += 1
        row["items_sold"] -= event.item_count
        row["revenue_cents"] -= event.total_cents


def _merge(table: Table, excluded: Excluded) -> dict[str, ColumnElement[Any]]:
    return added(table, excluded, *_COUNTERS)
