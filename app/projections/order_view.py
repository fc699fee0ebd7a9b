"""The order view: each order as placed (customer, lines, totals) and where it stands now.

A batch is folded per order first: an order placed in the batch is inserted already in its
final state (say PAID, if OrderPaid followed in the batch); an order placed before gets one
update with its last status. So a batch costs one executemany INSERT and one executemany UPDATE.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import Text, bindparam, func, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.events import (
    OrderCancelled,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    PlacedLine,
    RecordedEvent,
)
from app.events.types import OrderEvent
from app.projections.base import Projection
from app.projections.change_keys import ChangedKeys, customer_orders_key, order_key
from app.projections.names import ProjectionName
from app.projections.tables import order_view
from app.projections.upserts import Row

_STATUS = {OrderPaid: "PAID", OrderShipped: "SHIPPED", OrderCancelled: "CANCELLED"}

_INSERT = insert(order_view)
# Bound names differ from the column names: SQLAlchemy reserves those for the SET clause.
_UPDATE = (
    update(order_view)
    .where(order_view.c.id == bindparam("order_id"))
    .values(
        status=bindparam("new_status"),
        updated_at=bindparam("new_updated_at"),
        version=bindparam("new_version"),
        cancel_reason=func.coalesce(
            bindparam("new_cancel_reason", type_=Text), order_view.c.cancel_reason
        ),
    )
)


class OrderView(Projection):
    name = ProjectionName.ORDER_VIEW
    aggregate_types = frozenset({"Order"})
    handles = frozenset({OrderPlaced, OrderPaid, OrderShipped, OrderCancelled})
    tables = (order_view,)

    async def apply(
        self, connection: AsyncConnection, events: Sequence[RecordedEvent]
    ) -> ChangedKeys:
        placed: dict[UUID, Row] = {}
        changed: dict[UUID, Row] = {}
        keys: ChangedKeys = set()
        for recorded in events:
            event = recorded.event
            if not isinstance(event, OrderEvent) or type(event) not in self.handles:
                continue
            keys |= {order_key(event.order_id), customer_orders_key(event.customer_id)}
            if isinstance(event, OrderPlaced):
                placed[event.order_id] = _placed_row(recorded, event)
            else:
                # Placed in this batch: fold into the row to insert; else into one update.
                row = placed.get(event.order_id)
                if row is None:
                    row = changed.setdefault(event.order_id, {"cancel_reason": None})
                _advance(row, recorded, event)
        await _write(connection, placed, changed)
        return keys


def _placed_row(recorded: RecordedEvent, event: OrderPlaced) -> Row:
    return {
        "id": event.order_id,
        "customer_id": event.customer_id,
        "customer_name": event.customer_name,
        "customer_email": event.customer_email,
        "status": "PLACED",
        "lines": [_line(line) for line in event.lines],
        "item_count": event.item_count,
        "total_cents": event.total_cents,
        "cancel_reason": None,
        "placed_at": event.placed_at,
        "updated_at": recorded.occurred_at,
        "version": recorded.aggregate_version,
    }


def _line(line: PlacedLine) -> dict[str, Any]:
    return {
        "productId": str(line.product_id),
        "sku": line.sku,
        "productName": line.product_name,
        "quantity": line.quantity,
        "unitPriceCents": line.unit_price_cents,
        "lineTotalCents": line.total_cents,
    }


def _advance(row: Row, recorded: RecordedEvent, event: OrderEvent) -> None:
    """A later status event of the order: its status, time and version; a cancel's reason."""
    row.update(
        status=_STATUS[type(event)],
        updated_at=recorded.occurred_at,
        version=recorded.aggregate_version,
    )
    if isinstance(event, OrderCancelled):
        row["cancel_reason"] = event.reason


async def _write(
    connection: AsyncConnection, placed: dict[UUID, Row], changed: dict[UUID, Row]
) -> None:
    if placed:
        await connection.execute(_INSERT, [placed[key] for key in sorted(placed)])
    if changed:
        await connection.execute(
            _UPDATE,
            [
                {
                    "order_id": key,
                    "new_status": row["status"],
                    "new_updated_at": row["updated_at"],
                    "new_version": row["version"],
                    "new_cancel_reason": row["cancel_reason"],
                }
                for key, row in sorted(changed.items())
            ],
        )
