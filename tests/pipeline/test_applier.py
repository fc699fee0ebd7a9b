"""The version guard under concurrency: two appliers of one aggregate apply each event once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from app.events import OrderPaid, OrderPlaced, OrderShipped, PlacedLine, RecordedEvent, encode
from app.events.serialization import stream_fields
from app.pipeline.applier import Delivery, OutOfOrder, apply_batch, apply_batches
from app.projections.registry import PROJECTIONS
from app.runtime.bootstrap import Stores

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def to_stream_fields(recorded: RecordedEvent, position: int) -> dict[str, str]:
    """The stream entry the relay would send for a recorded event."""
    return stream_fields(
        recorded.event_id, recorded.event_type, recorded.schema_version, recorded.aggregate_type,
        recorded.aggregate_id, recorded.aggregate_version, recorded.occurred_at, position,
        encode(recorded.event),
    )  # fmt: skip


def order_placed(product_id: uuid.UUID) -> Delivery:
    order_id = uuid.uuid4()
    line = PlacedLine(product_id, "SKU", "Thing", 100, 2)
    event = OrderPlaced(order_id, uuid.uuid4(), "N", "n@example.com", (line,), 2, 200, NOW)
    recorded = RecordedEvent(uuid.uuid4(), 1, NOW, event)
    return Delivery("1-0", to_stream_fields(recorded, 1), recorded)


async def test_two_appliers_of_a_new_aggregate_apply_its_first_event_once(
    stores: Stores,
) -> None:
    """As when a worker's lease lapses while it still runs and its successor starts."""
    catalogue = next(p for p in PROJECTIONS if p.name == "product_catalogue")
    product_id = uuid.uuid4()

    async def apply(delivery: Delivery) -> None:
        async with stores.read_engine.begin() as connection:
            await apply_batch(connection, catalogue, [delivery])

    for _ in range(10):
        delivery = order_placed(product_id)
        await asyncio.gather(apply(delivery), apply(delivery))
    async with stores.read_engine.connect() as connection:
        sold = await connection.scalar(
            text("SELECT units_sold FROM product_catalogue WHERE id = :id"), {"id": product_id}
        )
    assert sold == 10 * 2


async def test_an_event_that_skips_a_version_is_refused_and_applies_nothing(
    stores: Stores,
) -> None:
    """As when two consumers of one partition split its entries: v3 must wait for v2."""
    orders = next(p for p in PROJECTIONS if p.name == "order_view")
    placed = order_placed(uuid.uuid4())
    order_id = placed.event.aggregate_id
    customer_id = placed.event.event.customer_id  # type: ignore[attr-defined]

    def later(version: int, event: object) -> Delivery:
        recorded = RecordedEvent(uuid.uuid4(), version, NOW, event)  # type: ignore[arg-type]
        return Delivery(f"{version}-0", to_stream_fields(recorded, 1), recorded)

    paid = later(2, OrderPaid(order_id, customer_id))
    shipped = later(3, OrderShipped(order_id, customer_id))

    async def apply(*deliveries: Delivery) -> None:
        async with stores.read_engine.begin() as connection:
            await apply_batch(connection, orders, list(deliveries))

    async def status() -> tuple[str, int]:
        async with stores.read_engine.connect() as connection:
            row = (
                await connection.execute(
                    text("SELECT status, version FROM order_view WHERE id = :id"), {"id": order_id}
                )
            ).one()
        return row.status, row.version

    await apply(placed)
    with pytest.raises(OutOfOrder, match="v3 arrived before v2"):
        await apply(shipped)
    assert await status() == ("PLACED", 1)
    await apply(paid)
    await apply(shipped)
    await apply(paid)  # a redelivery: skipped
    assert await status() == ("SHIPPED", 3)


async def test_several_projections_in_one_transaction_each_skip_only_what_they_applied(
    stores: Stores,
) -> None:
    """Group commit applies a worker's projections together, their guards locked in one
    statement: each projection decides from its own guard what is new."""
    orders = next(p for p in PROJECTIONS if p.name == "order_view")
    catalogue = next(p for p in PROJECTIONS if p.name == "product_catalogue")
    product_id = uuid.uuid4()
    first, second = order_placed(product_id), order_placed(product_id)
    async with stores.read_engine.begin() as connection:  # only the order view has the first
        await apply_batch(connection, orders, [first])
    async with stores.read_engine.begin() as connection:
        for_orders, for_catalogue = await apply_batches(
            connection, [(orders, [first, second]), (catalogue, [first, second])]
        )
    assert (for_orders.applied, for_orders.skipped) == (1, 1)
    assert (for_catalogue.applied, for_catalogue.skipped) == (2, 0)
    assert for_orders.changed == {
        f"order:{second.event.aggregate_id}",
        f"customer-orders:{second.event.event.customer_id}",
    }  # type: ignore[attr-defined]
    async with stores.read_engine.connect() as connection:
        sold = await connection.scalar(
            text("SELECT units_sold FROM product_catalogue WHERE id = :id"), {"id": product_id}
        )
        shown = await connection.scalar(
            text("SELECT count(*) FROM order_view WHERE id = ANY(:ids)"),
            {"ids": [first.event.aggregate_id, second.event.aggregate_id]},
        )
    assert (sold, shown) == (2 * 2, 2)
