"""The version guard under concurrency: two appliers of one aggregate apply each event once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from sqlalchemy import text

from app.events import OrderPlaced, PlacedLine, RecordedEvent
from app.events.serialization import to_stream_fields
from app.projections.applier import Delivery, apply_batch
from app.projections.registry import PROJECTIONS
from app.services import Services

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def order_placed(product_id: uuid.UUID) -> Delivery:
    order_id = uuid.uuid4()
    line = PlacedLine(product_id, "SKU", "Thing", 100, 2)
    event = OrderPlaced(order_id, uuid.uuid4(), "N", "n@example.com", (line,), 2, 200, NOW)
    recorded = RecordedEvent(uuid.uuid4(), 1, NOW, event)
    return Delivery("1-0", to_stream_fields(recorded, 1), recorded)


async def test_two_appliers_of_a_new_aggregate_apply_its_first_event_once(
    services: Services,
) -> None:
    """As when a worker's lease lapses while it still runs and its successor starts."""
    catalogue = next(p for p in PROJECTIONS if p.name == "product_catalogue")
    product_id = uuid.uuid4()

    async def apply(delivery: Delivery) -> None:
        async with services.read_engine.begin() as connection:
            await apply_batch(connection, catalogue, [delivery])

    for _ in range(10):
        delivery = order_placed(product_id)
        await asyncio.gather(apply(delivery), apply(delivery))
    async with services.read_engine.connect() as connection:
        sold = await connection.scalar(
            text("SELECT units_sold FROM product_catalogue WHERE id = :id"), {"id": product_id}
        )
    assert sold == 10 * 2
