"""The version guard under concurrency: two appliers of one aggregate apply each event once;
the one-statement path (apply_at_once) leaves to apply_batch what it cannot decide alone."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from app.events import OrderPaid, OrderPlaced, OrderShipped, PlacedLine, RecordedEvent, encode
from app.events.serialization import stream_fields
from app.pipeline.applier import (
    Delivery,
    OutOfOrder,
    apply_at_once,
    apply_batch,
    apply_batches,
    park,
)
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
    line = PlacedLine.priced(product_id, "SKU", "Thing", 100, 2)
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


ORDERS = next(p for p in PROJECTIONS if p.name == "order_view")
CATALOGUE = next(p for p in PROJECTIONS if p.name == "product_catalogue")


def later(placed: Delivery, version: int, event_type: type[OrderPaid | OrderShipped]) -> Delivery:
    """A later event of the order `placed` places."""
    order = placed.event.event
    event = event_type(order.order_id, order.customer_id)  # type: ignore[attr-defined]
    recorded = RecordedEvent(uuid.uuid4(), version, NOW, event)
    return Delivery(f"{version}-0", to_stream_fields(recorded, 1), recorded)


async def order_row(stores: Stores, placed: Delivery) -> tuple[str, int] | None:
    async with stores.read_engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT status, version FROM order_view WHERE id = :id"),
                {"id": placed.event.aggregate_id},
            )
        ).one_or_none()
    return None if row is None else (row.status, row.version)


async def test_one_statement_applies_several_projections_and_skips_redeliveries(
    stores: Stores,
) -> None:
    placed = order_placed(uuid.uuid4())
    paid = later(placed, 2, OrderPaid)
    for_orders, for_catalogue = await apply_at_once(
        stores.read_engine, [(ORDERS, [placed, paid, paid]), (CATALOGUE, [placed])]
    )
    assert (for_orders.applied, for_orders.skipped, for_orders.left) == (2, 1, [])
    assert (for_catalogue.applied, for_catalogue.skipped, for_catalogue.left) == (1, 0, [])
    order_id = placed.event.aggregate_id
    assert f"order:{order_id}" in for_orders.changed
    assert await order_row(stores, placed) == ("PAID", 2)
    # Sent again, with the next event: only the next is applied.
    shipped = later(placed, 3, OrderShipped)
    [again] = await apply_at_once(stores.read_engine, [(ORDERS, [placed, paid, shipped])])
    assert (again.applied, again.skipped, again.left) == (1, 2, [])
    assert await order_row(stores, placed) == ("SHIPPED", 3)
    async with stores.read_engine.connect() as connection:
        applied = await connection.scalar(
            text("SELECT events_applied FROM projection_state WHERE projection = 'order_view'")
        )
    assert applied == 3


async def test_one_statement_leaves_events_past_a_gap_unapplied(stores: Stores) -> None:
    placed = order_placed(uuid.uuid4())
    shipped = later(placed, 3, OrderShipped)
    [result] = await apply_at_once(stores.read_engine, [(ORDERS, [placed, shipped])])
    assert (result.applied, result.left) == (1, [shipped])
    assert await order_row(stores, placed) == ("PLACED", 1)
    async with stores.read_engine.begin() as connection:  # as the consumer does with `left`
        with pytest.raises(OutOfOrder, match="v3 arrived before v2"):
            await apply_batch(connection, ORDERS, result.left)


async def test_one_statement_leaves_an_aggregate_another_applier_wrote_after_its_snapshot(
    stores: Stores,
) -> None:
    """A lapsed lease: another applier commits the order's first event while the statement
    waits for its guard. The statement's snapshot does not show the order's row, so applying
    the next event there would miss it: the aggregate is left, and apply_batch (a statement
    after the lock, with a newer snapshot) applies what is new."""
    placed = order_placed(uuid.uuid4())
    paid = later(placed, 2, OrderPaid)
    async with stores.read_engine.connect() as other:
        transaction = await other.begin()
        await apply_batch(other, ORDERS, [placed])  # holds the guard row until it commits
        statement = asyncio.create_task(
            apply_at_once(stores.read_engine, [(ORDERS, [placed, paid])])
        )
        for _ in range(100):
            async with stores.read_engine.connect() as connection:
                waiting = await connection.scalar(text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                ))  # fmt: skip
            if waiting:
                break
            await asyncio.sleep(0.02)
        assert waiting == 1
        await transaction.commit()
    [result] = await statement
    assert (result.applied, result.left) == (0, [placed, paid])
    async with stores.read_engine.begin() as connection:
        rest = await apply_batch(connection, ORDERS, result.left)
    assert (rest.applied, rest.skipped) == (1, 1)
    assert await order_row(stores, placed) == ("PAID", 2)


async def test_one_statement_leaves_a_parked_aggregate(stores: Stores) -> None:
    placed = order_placed(uuid.uuid4())
    async with stores.read_engine.begin() as connection:
        await park(connection, ORDERS, [placed], "poison", 3)
    paid = later(placed, 2, OrderPaid)
    [result] = await apply_at_once(stores.read_engine, [(ORDERS, [paid])])
    assert (result.applied, result.left) == (0, [paid])
    async with stores.read_engine.begin() as connection:
        rest = await apply_batch(connection, ORDERS, result.left)
    assert rest.parked == 1
    assert await order_row(stores, placed) is None
