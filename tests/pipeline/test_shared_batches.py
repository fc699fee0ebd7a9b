"""Group commit: batches submitted while one is applied go together in the next transaction;
a combined batch that fails applies nothing and sends each batch back to be applied alone."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text

from app.events import OrderShipped, RecordedEvent
from app.pipeline.applier import BatchResult, Delivery, OutOfOrder
from app.pipeline.shared_batches import SharedBatches
from app.projections.change_keys import ChangeKey, KeyKind, order_key
from app.projections.registry import PROJECTIONS
from app.runtime.bootstrap import Stores
from tests.pipeline.test_applier import NOW, order_placed, to_stream_fields

ORDER_VIEW = next(p for p in PROJECTIONS if p.name == "order_view")


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


def keys(result: BatchResult | None) -> set[ChangeKey]:
    """The orders whose rows the batch changed, as announced."""
    assert result is not None
    return {key for key in result.changed if key.kind is KeyKind.ORDER}


async def test_batches_submitted_while_one_is_applied_commit_together(stores: Stores) -> None:
    shared = SharedBatches(ORDER_VIEW, stores.read_engine)
    first, second, third = placed(), placed(), placed()
    results = await asyncio.gather(
        shared.apply([first]), shared.apply([second]), shared.apply([third])
    )
    assert await visible(stores, first, second, third) == [True, True, True]
    # The first went alone; the other two waited and went in one transaction, whose changed
    # keys one of them announces.
    assert keys(results[0]) == {order_key(first.event.aggregate_id)}
    together = {order_key(second.event.aggregate_id), order_key(third.event.aggregate_id)}
    assert sorted([keys(results[1]), keys(results[2])], key=len) == [set(), together]
    # Nothing is left running: the next batch leads at once.
    fourth = placed()
    assert keys(await shared.apply([fourth])) == {order_key(fourth.event.aggregate_id)}


async def test_a_combined_batch_that_fails_applies_nothing_and_each_goes_alone(
    stores: Stores,
) -> None:
    shared = SharedBatches(ORDER_VIEW, stores.read_engine)
    first, poisoned, good = placed(), shipped_before_paid(), placed()
    results = await asyncio.gather(
        shared.apply([first]), shared.apply([poisoned]), shared.apply([good])
    )
    assert list(results[1:]) == [None, None]  # each applies its own alone
    assert await visible(stores, first, good) == [True, False]
    # Alone, each finds its own outcome: the good one commits, the other is refused.
    assert keys(await shared.apply([good])) == {order_key(good.event.aggregate_id)}
    with pytest.raises(OutOfOrder):
        await shared.apply([poisoned])
    assert await visible(stores, good) == [True]


async def test_a_batch_cancelled_while_it_waits_is_not_applied(stores: Stores) -> None:
    shared = SharedBatches(ORDER_VIEW, stores.read_engine)
    first, cancelled = placed(), placed()
    leading = asyncio.create_task(shared.apply([first]))
    await asyncio.sleep(0)  # it leads: its transaction is under way
    waiting = asyncio.create_task(shared.apply([cancelled]))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await leading
    assert await visible(stores, first, cancelled) == [True, False]
    later = placed()
    assert keys(await shared.apply([later])) == {order_key(later.event.aggregate_id)}
