"""The four read-model projections on a real read store: rows, change keys, and batch-invariance.

The property that matters most: applying one history one event per call, all in one call, or
with aggregates interleaved differently and cut into other batches gives the same tables, and
those tables hold what the contract says (counters over orders not cancelled, and so on).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.events import (
    CustomerRegistered,
    Event,
    OrderCancelled,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    PlacedLine,
    ProductCreated,
    ProductPriceChanged,
    ProductRestocked,
    RecordedEvent,
)
from app.projections.base import Projection
from app.projections.change_keys import parse
from app.projections.customer_summary import CustomerSummary
from app.projections.daily_sales import DailySales
from app.projections.order_view import OrderView
from app.projections.product_catalogue import ProductCatalogue
from app.projections.registry import PROJECTIONS
from app.projections.tables import customer_summary, daily_sales, order_view, product_catalogue
from app.runtime.bootstrap import Stores

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
Snapshot = dict[str, list[dict[str, Any]]]


# ---------------------------------------------------------------- building histories


class Stream:
    """The events of one aggregate, numbered from version 1 as they are added."""

    def __init__(self) -> None:
        self.events: list[RecordedEvent] = []

    def add(self, event: Event, at: datetime) -> RecordedEvent:
        recorded = RecordedEvent(uuid4(), len(self.events) + 1, at, event)
        self.events.append(recorded)
        return recorded


def registered(customer_id: UUID, at: datetime = T0, name: str = "Ada") -> CustomerRegistered:
    return CustomerRegistered(customer_id, f"{name.lower()}@example.com", name, at)


def created(product_id: UUID, price: int, stock: int, sku: str = "SKU-1") -> ProductCreated:
    return ProductCreated(product_id, sku, f"Product {sku}", price, stock, T0)


def line(product_id: UUID, quantity: int, price: int, sku: str = "SKU-1") -> PlacedLine:
    return PlacedLine.priced(product_id, sku, f"Product {sku}", price, quantity)


def placed(
    order_id: UUID, customer_id: UUID, lines: Sequence[PlacedLine], at: datetime
) -> OrderPlaced:
    return OrderPlaced(
        order_id, customer_id, "Ada", "ada@example.com", tuple(lines),
        sum(x.quantity for x in lines), sum(x.line_total_cents for x in lines), at,
    )  # fmt: skip


def cancelled(order: OrderPlaced, reason: str | None, previous: str = "PLACED") -> OrderCancelled:
    return OrderCancelled(
        order.order_id, order.customer_id, reason, previous, order.lines,
        order.item_count, order.total_cents, order.placed_at,
    )  # fmt: skip


def order_stream(order: OrderPlaced, fate: Sequence[str], at: datetime) -> Stream:
    """An order placed at `at` (occurred), then paid / shipped / cancelled an hour apart."""
    stream = Stream()
    stream.add(order, at)
    for step, what in enumerate(fate, start=1):
        when = at + timedelta(hours=step)
        if what == "PAID":
            stream.add(OrderPaid(order.order_id, order.customer_id), when)
        elif what == "SHIPPED":
            stream.add(OrderShipped(order.order_id, order.customer_id), when)
        else:
            stream.add(cancelled(order, f"reason {step}"), when)
    return stream


# ---------------------------------------------------------------- applying and reading


async def apply(
    connection: AsyncConnection, projection: Projection, events: Iterable[RecordedEvent]
) -> set[str]:
    """As the applier does: only the events the projection follows and handles; the keys
    as the change feed sends them, each read back as a subscriber reads it."""
    mine = [
        e
        for e in events
        if e.aggregate_type in projection.aggregate_types and type(e.event) in projection.handles
    ]
    return {str(parse(key)) for key in await projection.apply(connection, mine)}


async def apply_in(
    engine: AsyncEngine, projection: Projection, *batches: list[RecordedEvent]
) -> set[str]:
    keys: set[str] = set()
    for batch in batches:
        async with engine.begin() as connection:
            keys |= await apply(connection, projection, batch)
    return keys


async def snapshot(connection: AsyncConnection) -> Snapshot:
    tables = (order_view, customer_summary, product_catalogue, daily_sales)
    result: Snapshot = {}
    for table in tables:
        rows = await connection.execute(select(table).order_by(*table.primary_key.columns))
        result[table.name] = [dict(row._mapping) for row in rows]
    return result


async def rows_of(engine: AsyncEngine, table: Any) -> list[dict[str, Any]]:
    async with engine.connect() as connection:
        return (await snapshot(connection))[table.name]


# ---------------------------------------------------------------- the registry


def test_registry_lists_each_projection_once_named_as_its_table() -> None:
    assert [p.name for p in PROJECTIONS] == [
        "order_view", "customer_summary", "product_catalogue", "daily_sales", "order_history",
    ]  # fmt: skip
    for projection in PROJECTIONS:
        assert [t.name for t in projection.tables] == [projection.name]
        assert projection.applied.name == f"{projection.name}_applied"


async def test_an_empty_batch_changes_nothing(stores: Stores) -> None:
    async with stores.read_engine.begin() as connection:
        for projection in PROJECTIONS:
            assert await projection.apply(connection, []) == set()
        assert all(rows == [] for rows in (await snapshot(connection)).values())


# ---------------------------------------------------------------- order_view


async def test_order_view_follows_an_order_through_its_life(stores: Stores) -> None:
    engine, view = stores.read_engine, OrderView()
    customer, product_a, product_b = uuid4(), uuid4(), uuid4()
    shipped = placed(
        uuid4(), customer, [line(product_a, 2, 150, "A"), line(product_b, 1, 999, "B")], T0
    )
    life = order_stream(shipped, ["PAID", "SHIPPED"], T0 + timedelta(seconds=1))
    keys = await apply_in(engine, view, *([e] for e in life.events))

    dropped = placed(uuid4(), customer, [line(product_a, 1, 150, "A")], T0 + timedelta(days=1))
    death = order_stream(dropped, ["CANCELLED"], T0 + timedelta(days=1))
    keys |= await apply_in(engine, view, death.events)

    assert keys == {
        f"order:{shipped.order_id}", f"order:{dropped.order_id}", f"customer-orders:{customer}",
    }  # fmt: skip
    rows = {row["id"]: row for row in await rows_of(engine, order_view)}
    assert rows[shipped.order_id] == {
        "id": shipped.order_id, "customer_id": customer, "customer_name": "Ada",
        "customer_email": "ada@example.com", "status": "SHIPPED",
        "lines": [
            {"productId": str(product_a), "sku": "A", "productName": "Product A", "quantity": 2,
             "unitPriceCents": 150, "lineTotalCents": 300},
            {"productId": str(product_b), "sku": "B", "productName": "Product B", "quantity": 1,
             "unitPriceCents": 999, "lineTotalCents": 999},
        ],
        "item_count": 3, "total_cents": 1299, "cancel_reason": None, "placed_at": T0,
        "updated_at": life.events[-1].occurred_at, "version": 3,
    }  # fmt: skip
    gone = rows[dropped.order_id]
    assert (gone["status"], gone["cancel_reason"], gone["version"]) == ("CANCELLED", "reason 1", 2)
    assert gone["updated_at"] == death.events[-1].occurred_at
    assert gone["placed_at"] == dropped.placed_at


async def test_order_view_updates_an_order_placed_in_an_earlier_batch(stores: Stores) -> None:
    engine, view = stores.read_engine, OrderView()
    order = placed(uuid4(), uuid4(), [line(uuid4(), 1, 100)], T0)
    stream = order_stream(order, ["PAID", "CANCELLED"], T0)
    await apply_in(engine, view, stream.events[:1])
    keys = await apply_in(engine, view, stream.events[1:])
    assert keys == {f"order:{order.order_id}", f"customer-orders:{order.customer_id}"}
    [row] = await rows_of(engine, order_view)
    assert (row["status"], row["cancel_reason"], row["version"]) == ("CANCELLED", "reason 2", 3)
    assert row["updated_at"] == T0 + timedelta(hours=2)


# ---------------------------------------------------------------- customer_summary


async def test_customer_summary_counts_orders_not_cancelled(stores: Stores) -> None:
    engine, summary = stores.read_engine, CustomerSummary()
    customer, product = uuid4(), uuid4()
    first = placed(uuid4(), customer, [line(product, 2, 500)], T0)
    second = placed(uuid4(), customer, [line(product, 1, 700)], T0 + timedelta(days=1))
    registration = Stream()
    registration.add(registered(customer, T0 - timedelta(days=3)), T0 - timedelta(days=3))
    # The orders travel on other partitions: both come before the registration.
    keys = await apply_in(engine, summary, order_stream(first, [], T0).events)
    [row] = await rows_of(engine, customer_summary)
    assert (row["version"], row["order_count"], row["email"]) == (0, 1, None)
    keys |= await apply_in(engine, summary, order_stream(second, ["CANCELLED"], T0).events)
    keys |= await apply_in(engine, summary, registration.events)

    assert keys == {f"customer:{customer}"}
    [row] = await rows_of(engine, customer_summary)
    assert row == {
        "id": customer, "email": "ada@example.com", "name": "Ada",
        "registered_at": T0 - timedelta(days=3), "order_count": 1, "total_spent_cents": 1000,
        "last_order_at": second.placed_at, "version": 1,
    }  # fmt: skip


# ---------------------------------------------------------------- product_catalogue


async def test_product_catalogue_keeps_stock_and_sales(stores: Stores) -> None:
    engine, catalogue = stores.read_engine, ProductCatalogue()
    product, customer = uuid4(), uuid4()
    kept = placed(uuid4(), customer, [line(product, 3, 250)], T0)
    dropped = placed(uuid4(), customer, [line(product, 2, 300)], T0)
    history = Stream()
    history.add(created(product, price=250, stock=10), T0)
    history.add(ProductRestocked(product, 5, 15), T0)
    history.add(ProductRestocked(product, 5, 20), T0)
    history.add(ProductPriceChanged(product, 300, 250), T0)
    # An order reserves stock before the product's own creation arrives.
    keys = await apply_in(engine, catalogue, order_stream(kept, [], T0).events)
    [row] = await rows_of(engine, product_catalogue)
    assert (row["stock"], row["units_sold"], row["version"], row["sku"]) == (-3, 3, 0, None)
    keys |= await apply_in(engine, catalogue, history.events[:1], history.events[1:])
    keys |= await apply_in(engine, catalogue, order_stream(dropped, ["CANCELLED"], T0).events)

    assert keys == {f"product:{product}"}
    [row] = await rows_of(engine, product_catalogue)
    assert row == {
        "id": product, "sku": "SKU-1", "name": "Product SKU-1", "price_cents": 300,
        "stock": 17, "units_sold": 3, "revenue_cents": 750, "version": 4,
    }  # fmt: skip


# ---------------------------------------------------------------- daily_sales


async def test_daily_sales_counts_by_utc_day_of_placement(stores: Stores) -> None:
    engine, sales = stores.read_engine, DailySales()
    customer, product = uuid4(), uuid4()
    new_york = timezone(timedelta(hours=-5))
    monday = placed(uuid4(), customer, [line(product, 2, 100)], T0)
    # 22:30 in New York on the 22nd is 03:30 UTC on the 23rd.
    tuesday = placed(
        uuid4(), customer, [line(product, 3, 100)], datetime(2026, 11, 22, 22, 30, tzinfo=new_york)
    )
    keys = await apply_in(engine, sales, order_stream(monday, [], T0).events)
    keys |= await apply_in(engine, sales, order_stream(tuesday, [], T0).events)
    # Cancelled three days later: it is the day of placement that changes.
    later = T0 + timedelta(days=3)
    keys |= await apply_in(engine, sales, order_stream(monday, ["CANCELLED"], later).events[1:])

    assert keys == {"daily-sales:2026-11-22", "daily-sales:2026-11-23"}
    assert await rows_of(engine, daily_sales) == [
        {"day": date(2026, 11, 22), "orders_placed": 1, "orders_cancelled": 1, "items_sold": 0,
         "revenue_cents": 0},
        {"day": date(2026, 11, 23), "orders_placed": 1, "orders_cancelled": 0, "items_sold": 3,
         "revenue_cents": 300},
    ]  # fmt: skip


# ---------------------------------------------------------------- batching and interleaving

FATES = ((), ("PAID",), ("PAID", "SHIPPED"), ("CANCELLED",), ("PAID", "CANCELLED"))
STATUS = {"OrderPlaced": "PLACED", "OrderPaid": "PAID", "OrderShipped": "SHIPPED",
          "OrderCancelled": "CANCELLED"}  # fmt: skip
prices = st.integers(1, 10_000)


@st.composite
def histories(draw: st.DrawFn) -> list[list[RecordedEvent]]:
    """Streams in causal order: customers, products with restocks and price changes, orders."""
    counts = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(0, 6))
    ids = iter(draw(st.lists(st.uuids(), min_size=sum(counts), max_size=sum(counts), unique=True)))
    customers = [next(ids) for _ in range(counts[0])]
    products = [next(ids) for _ in range(counts[1])]
    streams: list[Stream] = []
    for customer in customers:
        streams.append(Stream())
        streams[-1].add(registered(customer), T0)
    for number, product in enumerate(products):
        stream, price = Stream(), draw(prices)
        stream.add(created(product, price, draw(st.integers(0, 50)), f"SKU-{number}"), T0)
        for restock in draw(st.lists(st.one_of(st.integers(1, 20), st.none()), max_size=3)):
            if restock is None:
                new_price = draw(prices)
                stream.add(ProductPriceChanged(product, new_price, price), T0)
                price = new_price
            else:
                stream.add(ProductRestocked(product, restock, 0), T0)
        streams.append(stream)
    for _ in range(counts[2]):
        chosen = draw(st.lists(st.sampled_from(products), min_size=1, max_size=3, unique=True))
        lines = [line(p, draw(st.integers(1, 5)), draw(prices)) for p in chosen]
        at = T0 + timedelta(minutes=draw(st.integers(0, 3 * 24 * 60)))
        order = placed(next(ids), draw(st.sampled_from(customers)), lines, at)
        streams.append(order_stream(order, draw(st.sampled_from(FATES)), at))
    return [stream.events for stream in streams]


def interleave(streams: list[list[RecordedEvent]], rng: random.Random) -> list[RecordedEvent]:
    """All events, aggregates mixed at random, each aggregate's own events still in order."""
    pending = [list(reversed(events)) for events in streams if events]
    mixed: list[RecordedEvent] = []
    while pending:
        index = rng.randrange(len(pending))
        mixed.append(pending[index].pop())
        if not pending[index]:
            del pending[index]
    return mixed


def cut(events: list[RecordedEvent], rng: random.Random) -> list[list[RecordedEvent]]:
    """The events in order, cut into batches of random sizes."""
    batches: list[list[RecordedEvent]] = []
    start = 0
    while start < len(events):
        size = rng.randint(1, 6)
        batches.append(events[start : start + size])
        start += size
    return batches


async def applied_then_rolled_back(
    engine: AsyncEngine, batches: list[list[RecordedEvent]]
) -> tuple[Snapshot, set[str]]:
    """Every projection's tables and keys after the batches, leaving the store as it was."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            keys: set[str] = set()
            for batch in batches:
                for projection in PROJECTIONS:
                    keys |= await apply(connection, projection, batch)
            return await snapshot(connection), keys
        finally:
            await transaction.rollback()


def summary_of(tables: Snapshot) -> dict[str, dict[Any, tuple[Any, ...]]]:
    return {
        "orders": {r["id"]: (r["status"], r["version"]) for r in tables["order_view"]},
        "customers": {
            r["id"]: (r["order_count"], r["total_spent_cents"], r["last_order_at"], r["version"])
            for r in tables["customer_summary"]
        },
        "products": {
            r["id"]: (
                r["price_cents"],
                r["stock"],
                r["units_sold"],
                r["revenue_cents"],
                r["version"],
            )
            for r in tables["product_catalogue"]
        },
        "days": {
            r["day"]: (
                r["orders_placed"],
                r["orders_cancelled"],
                r["items_sold"],
                r["revenue_cents"],
            )
            for r in tables["daily_sales"]
        },
    }


def model_of(streams: list[list[RecordedEvent]]) -> dict[str, dict[Any, tuple[Any, ...]]]:
    """What the contract says the read models hold, worked out from whole histories."""
    customers: dict[UUID, list[Any]] = {}
    products: dict[UUID, list[Any]] = {}
    days: defaultdict[date, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    orders: dict[UUID, tuple[Any, ...]] = {}
    for events in streams:
        first = events[0].event
        if isinstance(first, CustomerRegistered):
            customers[first.customer_id] = [0, 0, None, len(events)]
        elif isinstance(first, ProductCreated):
            price = [
                e.event.price_cents for e in events if isinstance(e.event, ProductPriceChanged)
            ]
            stock = sum(e.event.quantity for e in events if isinstance(e.event, ProductRestocked))
            products[first.product_id] = [
                (price or [first.price_cents])[-1], first.stock + stock, 0, 0, len(events),
            ]  # fmt: skip
    for events in streams:
        order = events[0].event
        if not isinstance(order, OrderPlaced):
            continue
        orders[order.order_id] = (STATUS[events[-1].event_type], len(events))
        day, customer = days[order.placed_at.astimezone(UTC).date()], customers[order.customer_id]
        day[0] += 1
        customer[2] = max(customer[2] or order.placed_at, order.placed_at)
        if isinstance(events[-1].event, OrderCancelled):
            day[1] += 1
            continue
        day[2], day[3] = day[2] + order.item_count, day[3] + order.total_cents
        customer[0], customer[1] = customer[0] + 1, customer[1] + order.total_cents
        for sold in order.lines:
            product = products[sold.product_id]
            product[1:4] = (
                product[1] - sold.quantity,
                product[2] + sold.quantity,
                product[3] + sold.line_total_cents,
            )
    return {
        "orders": orders,
        "customers": {key: tuple(value) for key, value in customers.items()},
        "products": {key: tuple(value) for key, value in products.items()},
        "days": {key: tuple(value) for key, value in days.items()},
    }


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(streams=histories(), rng=st.randoms(use_true_random=False))
async def test_tables_do_not_depend_on_batching_or_interleaving(
    stores: Stores, streams: list[list[RecordedEvent]], rng: random.Random
) -> None:
    natural = [event for events in streams for event in events]
    mixed = interleave(streams, rng)
    ways = {
        "one event per call": [[event] for event in natural],
        "all in one call": [natural],
        "interleaved, in random batches": cut(mixed, rng),
        "interleaved, in one call": [mixed],
    }
    results = {
        way: await applied_then_rolled_back(stores.read_engine, batches)
        for way, batches in ways.items()
    }
    tables, keys = results.pop("one event per call")
    for way, result in results.items():
        assert result == (tables, keys), way
    assert summary_of(tables) == model_of(streams)


@pytest.mark.parametrize("seed", range(5))
async def test_a_large_history_in_one_call_equals_it_event_by_event(
    stores: Stores, seed: int
) -> None:
    """A few hundred events: the batched statements hold many rows at once."""
    rng = random.Random(seed)
    streams = _large_history(rng)
    one_call = await applied_then_rolled_back(stores.read_engine, [interleave(streams, rng)])
    batched = await applied_then_rolled_back(stores.read_engine, cut(interleave(streams, rng), rng))
    assert one_call == batched
    assert summary_of(one_call[0]) == model_of(streams)


def _large_history(rng: random.Random) -> list[list[RecordedEvent]]:
    customers, products = [uuid4() for _ in range(20)], [uuid4() for _ in range(15)]
    streams: list[list[RecordedEvent]] = []
    for customer in customers:
        stream = Stream()
        stream.add(registered(customer), T0)
        streams.append(stream.events)
    for number, product in enumerate(products):
        stream = Stream()
        stream.add(created(product, rng.randint(1, 999), rng.randint(0, 99), f"SKU-{number}"), T0)
        for _ in range(rng.randint(0, 4)):
            stream.add(ProductRestocked(product, rng.randint(1, 9), 0), T0)
        streams.append(stream.events)
    for _ in range(120):
        chosen = rng.sample(products, rng.randint(1, 4))
        lines = [line(p, rng.randint(1, 5), rng.randint(1, 999)) for p in chosen]
        at = T0 + timedelta(minutes=rng.randint(0, 10 * 24 * 60))
        order = placed(uuid4(), rng.choice(customers), lines, at)
        streams.append(order_stream(order, rng.choice(FATES), at).events)
    return streams
