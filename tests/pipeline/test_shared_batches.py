"""Group commit: the batches a worker's consumers submit in one step of the event loop, or
while no statement can start, go together in one statement; at most two run at once; a
combined statement that fails applies nothing and sends each batch back to be applied alone;
what it cannot apply in order is left to its own batch."""

from __future__ import annotations

import asyncio
import uuid
from asyncio import Task

import pytest
from asyncpg.exceptions import DataError
from sqlalchemy import text

from app.events import OrderPlaced, OrderShipped, PlacedLine, RecordedEvent
from app.pipeline.applier import BatchResult, Delivery
from app.pipeline.shared_batches import SharedBatches
from app.projections.base import Projection
from app.projections.change_keys import ChangeKey, KeyKind, order_key, parse, product_key
from app.projections.registry import PROJECTIONS
from app.runtime.bootstrap import Stores
from tests.pipeline.test_applier import NOW, order_placed, to_stream_fields

ORDER_VIEW = next(p for p in PROJECTIONS if p.name == "order_view")
CATALOGUE = next(p for p in PROJECTIONS if p.name == "product_catalogue")


def placed() -> Delivery:
    return order_placed(uuid.uuid4())


def shipped_before_paid() -> Delivery:
    """v3 of an order no projection has seen: refused as out of order."""
    recorded = RecordedEvent(uuid.uuid4(), 3, NOW, OrderShipped(uuid.uuid4(), uuid.uuid4()))
    return Delivery("3-0", to_stream_fields(recorded, 1), recorded)


async def visible(stores: Stores, *deliveries: Delivery) -> list[bool]:
    ids = [d.event.aggregate_id for d in deliveries]
    async with stores.read_engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT id FROM order_view WHERE id = ANY(:ids)"), {"ids": ids}
        )
        found = {row.id for row in rows}
    return [i in found for i in ids]


async def units_sold(stores: Stores, delivery: Delivery) -> int | None:
    product_id = delivery.event.event.lines[0].product_id  # type: ignore[attr-defined]
    async with stores.read_engine.connect() as connection:
        sold: int | None = await connection.scalar(
            text("SELECT units_sold FROM product_catalogue WHERE id = :id"), {"id": product_id}
        )
    return sold


def keys(result: BatchResult | None) -> set[ChangeKey]:
    """The orders whose rows the batch changed, as announced."""
    assert result is not None
    return {key for key in map(parse, result.changed) if key.kind is KeyKind.ORDER}


async def under_way(
    shared: SharedBatches, projection: Projection, batch: Delivery
) -> Task[BatchResult | None]:
    """A batch submitted and led: its transaction has begun when this returns."""
    task = asyncio.create_task(shared.apply(projection, [batch]))
    for _ in range(2):  # it submits and gathers for one step, then begins
        await asyncio.sleep(0)
    return task


async def test_batches_submitted_while_one_is_applied_commit_together(stores: Stores) -> None:
    shared = SharedBatches(stores.read_engine, transactions=1)
    first, second, third = placed(), placed(), placed()
    leading = await under_way(shared, ORDER_VIEW, first)
    results = await asyncio.gather(
        leading, shared.apply(ORDER_VIEW, [second]), shared.apply(ORDER_VIEW, [third])
    )
    assert await visible(stores, first, second, third) == [True, True, True]
    # The first went alone; the other two waited and went in one transaction, whose changed
    # keys one of them announces.
    assert keys(results[0]) == {order_key(first.event.aggregate_id)}
    together = {order_key(second.event.aggregate_id), order_key(third.event.aggregate_id)}
    assert sorted([keys(results[1]), keys(results[2])], key=len) == [set(), together]
    # Nothing is left running: the next batch leads at once.
    fourth = placed()
    assert keys(await shared.apply(ORDER_VIEW, [fourth])) == {order_key(fourth.event.aggregate_id)}


async def blocked_on_a_lock(stores: Stores) -> int:
    async with stores.read_engine.connect() as connection:
        waiting: int = await connection.scalar(text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ))  # fmt: skip
    return waiting


async def test_two_transactions_run_at_once_and_a_third_batch_waits_for_one_to_end(
    stores: Stores,
) -> None:
    shared = SharedBatches(stores.read_engine)  # as a worker has it: two at once
    first, second, third = placed(), placed(), placed()
    async with stores.read_engine.connect() as blocker:  # every fold of order_view waits
        await blocker.execute(text("LOCK TABLE order_view IN EXCLUSIVE MODE"))
        leading = await under_way(shared, ORDER_VIEW, first)
        also = await under_way(shared, ORDER_VIEW, second)
        for _ in range(100):
            if await blocked_on_a_lock(stores) == 2:
                break
            await asyncio.sleep(0.05)
        waiting = asyncio.create_task(shared.apply(ORDER_VIEW, [third]))
        await asyncio.sleep(0.3)
        assert await blocked_on_a_lock(stores) == 2  # two transactions; the third batch waits
        assert not waiting.done()
        await blocker.rollback()
    results = await asyncio.gather(leading, also, waiting)
    assert await visible(stores, first, second, third) == [True, True, True]
    # Each went in a transaction of its own: the third took the first free turn.
    assert [keys(result) for result in results] == [
        {order_key(delivery.event.aggregate_id)} for delivery in (first, second, third)
    ]


async def test_each_projection_of_a_shared_transaction_announces_its_own_changes(
    stores: Stores,
) -> None:
    """One stream entry wakes a consumer per projection: their batches go together."""
    shared = SharedBatches(stores.read_engine)
    event = placed()
    product_id = event.event.event.lines[0].product_id  # type: ignore[attr-defined]
    for_orders, for_products = await asyncio.gather(
        shared.apply(ORDER_VIEW, [event]), shared.apply(CATALOGUE, [event])
    )
    assert keys(for_orders) == {order_key(event.event.aggregate_id)}
    assert str(product_key(product_id)) in for_products.changed  # type: ignore[union-attr]
    assert str(order_key(event.event.aggregate_id)) not in for_products.changed  # type: ignore[union-attr]


def overflowing() -> Delivery:
    """An order whose quantity the order view's integer column cannot hold: its fold fails."""
    line = PlacedLine.priced(uuid.uuid4(), "SKU", "Thing", 100, 2**40)
    event = OrderPlaced(uuid.uuid4(), uuid.uuid4(), "N", "n@example.com", (line,), 2**40, 100, NOW)
    recorded = RecordedEvent(uuid.uuid4(), 1, NOW, event)
    return Delivery("1-0", to_stream_fields(recorded, 1), recorded)


async def test_a_combined_statement_that_fails_applies_nothing_and_each_goes_alone(
    stores: Stores,
) -> None:
    shared = SharedBatches(stores.read_engine)
    first, poisoned, good = placed(), overflowing(), placed()
    leading = await under_way(shared, ORDER_VIEW, first)
    results = await asyncio.gather(
        leading, shared.apply(ORDER_VIEW, [poisoned]), shared.apply(CATALOGUE, [good])
    )
    assert list(results[1:]) == [None, None]  # each applies its own alone
    assert await visible(stores, first) == [True]
    assert await units_sold(stores, good) is None  # the combined statement applied nothing
    # Alone, each finds its own outcome: the good one commits, the other fails.
    assert (await shared.apply(CATALOGUE, [good])) is not None
    assert await units_sold(stores, good) == 2
    with pytest.raises(DataError, match="out of range"):
        await shared.apply(ORDER_VIEW, [poisoned])
    assert await visible(stores, poisoned) == [False]


async def test_what_the_statement_cannot_apply_in_order_is_left_to_its_own_batch(
    stores: Stores,
) -> None:
    shared = SharedBatches(stores.read_engine)
    first, early, good, also = placed(), shipped_before_paid(), placed(), placed()
    leading = await under_way(shared, ORDER_VIEW, first)
    results = await asyncio.gather(
        leading,
        shared.apply(ORDER_VIEW, [early, also]),
        shared.apply(CATALOGUE, [good]),
    )
    left = [result.left if result else None for result in results]
    assert left == [[], [early], []]  # the rest of the combined statement committed
    assert await visible(stores, first, also) == [True, True]
    assert await units_sold(stores, good) == 2
    assert await visible(stores, early) == [False]
    assert keys(results[1]) == {order_key(also.event.aggregate_id)}


async def test_a_batch_cancelled_while_it_waits_is_not_applied(stores: Stores) -> None:
    shared = SharedBatches(stores.read_engine)
    first, cancelled = placed(), placed()
    leading = await under_way(shared, ORDER_VIEW, first)
    waiting = asyncio.create_task(shared.apply(ORDER_VIEW, [cancelled]))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await leading
    assert await visible(stores, first, cancelled) == [True, False]
    later = placed()
    assert keys(await shared.apply(ORDER_VIEW, [later])) == {order_key(later.event.aggregate_id)}
