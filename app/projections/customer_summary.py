"""Customer summaries: who the customer is, and counters over their orders not cancelled.

Order events may come before the customer's CustomerRegistered (they travel on other
partitions), so a batch is folded into one delta per customer and upserted: registration
facts replace, counters add, last_order_at and version take the greatest. The result is the
same whatever order events of different aggregates arrive in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Table
from sqlalchemy.ext.asyncio import AsyncConnection

from app.events import CustomerRegistered, OrderCancelled, OrderPlaced, RecordedEvent
from app.projections.base import Projection
from app.projections.change_keys import ChangedKeys, customer_key
from app.projections.names import ProjectionName
from app.projections.tables import customer_summary
from app.projections.upserts import (
    Excluded,
    Row,
    added,
    fold_and_upsert,
    given_or_kept,
    greatest,
    latest,
)


class CustomerSummary(Projection):
    name = ProjectionName.CUSTOMER_SUMMARY
    aggregate_types = frozenset({"Customer", "Order"})
    handles = frozenset({CustomerRegistered, OrderPlaced, OrderCancelled})
    tables = (customer_summary,)

    async def apply(
        self, connection: AsyncConnection, events: Sequence[RecordedEvent]
    ) -> ChangedKeys:
        return await fold_and_upsert(
            connection, events, customer_summary, _fold, _merge, customer_key
        )


def _blank(customer_id: UUID) -> Row:
    return {
        "id": customer_id,
        "email": None,
        "name": None,
        "registered_at": None,
        "order_count": 0,
        "total_spent_cents": 0,
        "last_order_at": None,
        "version": 0,
    }


def _fold(rows: dict[UUID, Row], recorded: RecordedEvent) -> None:
    event = recorded.event
    if isinstance(event, CustomerRegistered):
        row = rows.setdefault(event.customer_id, _blank(event.customer_id))
        row.update(email=event.email, name=event.name, registered_at=event.registered_at)
        row["version"] = max(row["version"], recorded.aggregate_version)
    elif isinstance(event, OrderPlaced):
        row = rows.setdefault(event.customer_id, _blank(event.customer_id))
        row["order_count"] += 1
        row["total_spent_cents"] += event.total_cents
        row["last_order_at"] = latest(row["last_order_at"], event.placed_at)
    elif isinstance(event, OrderCancelled):
        row = rows.setdefault(event.customer_id, _blank(event.customer_id))
        row["order_count"] -= 1
        row["total_spent_cents"] -= event.total_cents


def _merge(table: Table, excluded: Excluded) -> dict[str, ColumnElement[Any]]:
    return {
        **given_or_kept(table, excluded, "email", "name", "registered_at"),
        **added(table, excluded, "order_count", "total_spent_cents"),
        **greatest(table, excluded, "last_order_at", "version"),
    }
