"""Seed a shop fast: the write tables and the event log by COPY, then the read models by a
rebuild from the log (the same code `shop projections rebuild` runs).

The data is what the write side would have produced: customers, products with plenty of
stock, and orders of three lines, 60% placed, 20% paid, 15% shipped and 5% cancelled, spread
over the last 90 days, with each aggregate's events in the outbox (published: the relay's
cursor is past them, so it does not send them again). Ids derive from numbers, so the load
generators and pgbench can name them without a lookup: see `customer_id` and `product_id`.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from app.events import (
    CustomerRegistered,
    Event,
    OrderCancelled,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    PlacedLine,
    ProductCreated,
    encode,
)

INITIAL_STOCK = 1_000_000_000
BATCH = 20_000


def _uuid(kind: str, n: int) -> uuid.UUID:
    return uuid.UUID(hashlib.md5(f"{kind}{n}".encode()).hexdigest())


def customer_id(n: int) -> uuid.UUID:
    """The id of customer n (1-based); SQL: md5('c' || n)::uuid."""
    return _uuid("c", n)


def product_id(n: int) -> uuid.UUID:
    """The id of product n (1-based); SQL: md5('p' || n)::uuid."""
    return _uuid("p", n)


def order_id(n: int) -> uuid.UUID:
    return _uuid("o", n)


@dataclass(frozen=True)
class Dataset:
    orders: int
    customers: int
    products: int

    @classmethod
    def for_orders(cls, orders: int, products: int = 1000) -> Dataset:
        return cls(orders, max(100, orders // 10), products)


def progress() -> Progress:
    return Progress(
        TextColumn("[bench] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=False,
    )


class _Outbox:
    """Outbox rows in the order they are added."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []

    def add(self, event: Event, version: int, at: datetime) -> None:
        self.rows.append(
            (
                uuid.uuid4(), event.aggregate_type, event.aggregate_id, version,
                event.type_name(), event.schema_version, json.dumps(encode(event)), at,
            )
        )  # fmt: skip


_OUTBOX_COLUMNS = (
    "event_id", "aggregate_type", "aggregate_id", "aggregate_version", "event_type",
    "schema_version", "payload", "occurred_at",
)  # fmt: skip


async def seed(write_url: str, dataset: Dataset, *, published: bool = True, seed: int = 7) -> int:
    """Fill an empty write store; returns the number of events in the log."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=90)
    connection = await asyncpg.connect(write_url)
    events = 0
    try:
        with progress() as bar:
            task = bar.add_task("customers and products", total=dataset.customers)
            outbox = _Outbox()
            customers = []
            for n in range(1, dataset.customers + 1):
                at = start + timedelta(seconds=n)
                row = (customer_id(n), f"customer{n}@example.com", f"Customer {n}", 1, at)
                customers.append(row)
                outbox.add(CustomerRegistered(row[0], row[1], row[2], at), 1, at)
            await connection.copy_records_to_table(
                "customers",
                records=customers,
                columns=("id", "email", "name", "version", "registered_at"),
            )
            bar.update(task, completed=dataset.customers)
            products = []
            for n in range(1, dataset.products + 1):
                price = rng.randrange(100, 20_000)
                products.append([product_id(n), f"SKU-{n:06d}", f"Product {n}", price, start])
                outbox.add(
                    ProductCreated(product_id(n), f"SKU-{n:06d}", f"Product {n}", price,
                                   INITIAL_STOCK, start),
                    1, start,
                )  # fmt: skip
            await connection.copy_records_to_table(
                "products",
                records=[(p[0], p[1], p[2], p[3], INITIAL_STOCK, 1, p[4]) for p in products],
                columns=("id", "sku", "name", "price_cents", "stock", "version", "created_at"),
            )
            events += await _flush(connection, outbox)

            task = bar.add_task("orders", total=dataset.orders)
            for first in range(1, dataset.orders + 1, BATCH):
                last = min(dataset.orders, first + BATCH - 1)
                orders, lines = [], []
                for n in range(first, last + 1):
                    order, order_lines = _order(rng, n, dataset, products, start, outbox)
                    orders.append(order)
                    lines.extend(order_lines)
                await connection.copy_records_to_table(
                    "orders",
                    records=orders,
                    columns=("id", "customer_id", "status", "cancel_reason", "version",
                             "placed_at"),
                )  # fmt: skip
                await connection.copy_records_to_table(
                    "order_lines",
                    records=lines,
                    columns=("order_id", "line_no", "product_id", "sku", "product_name",
                             "unit_price_cents", "quantity"),
                )  # fmt: skip
                events += await _flush(connection, outbox)
                bar.update(task, completed=last)
            # Stock held by orders that are not cancelled, as the write side counts it.
            await connection.execute(
                "UPDATE products p SET stock = $1 - r.units FROM ("
                " SELECT l.product_id, sum(l.quantity) AS units FROM order_lines l"
                " JOIN orders o ON o.id = l.order_id WHERE o.status <> 'CANCELLED'"
                " GROUP BY l.product_id) r WHERE p.id = r.product_id",
                INITIAL_STOCK,
            )
        if published:  # the relay's cursor past the whole log (see app/pipeline/relay.py)
            await connection.execute(
                "UPDATE relay_cursor SET through = (SELECT coalesce(max(position), 0) FROM outbox),"
                " snapshot = pg_current_snapshot()::text"
            )
        # Statistics and visibility maps, as autovacuum would give them in time (the read
        # models get theirs from the rebuild): every server measured plans on real numbers.
        await connection.execute("VACUUM (ANALYZE)")
    finally:
        await connection.close()
    return events


def _order(
    rng: random.Random,
    n: int,
    dataset: Dataset,
    products: list[list[Any]],
    start: datetime,
    outbox: _Outbox,
) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    oid = order_id(n)
    c = rng.randrange(1, dataset.customers + 1)
    cid = customer_id(c)
    placed = start + timedelta(seconds=dataset.customers + 10 + n * (89 * 86400 // dataset.orders))
    picks = rng.sample(range(1, dataset.products + 1), 3)
    placed_lines = tuple(
        PlacedLine.priced(product_id(p), products[p - 1][1], products[p - 1][2],
                          products[p - 1][3], rng.randrange(1, 4))
        for p in picks
    )  # fmt: skip
    items = sum(line.quantity for line in placed_lines)
    total = sum(line.line_total_cents for line in placed_lines)
    outbox.add(
        OrderPlaced(oid, cid, f"Customer {c}", f"customer{c}@example.com", placed_lines, items,
                    total, placed),
        1, placed,
    )  # fmt: skip
    roll = rng.random()
    status, version, reason = "PLACED", 1, None
    later = placed + timedelta(minutes=5)
    if roll < 0.05:
        status, version, reason = "CANCELLED", 2, "changed my mind"
        outbox.add(
            OrderCancelled(oid, cid, reason, "PLACED", placed_lines, items, total, placed),
            2, later,
        )  # fmt: skip
    elif roll < 0.40:
        status, version = "PAID", 2
        outbox.add(OrderPaid(oid, cid), 2, later)
        if roll < 0.20:
            status, version = "SHIPPED", 3
            outbox.add(OrderShipped(oid, cid), 3, later + timedelta(minutes=5))
    lines = [
        (oid, i, line.product_id, line.sku, line.product_name, line.unit_price_cents,
         line.quantity)
        for i, line in enumerate(placed_lines)
    ]  # fmt: skip
    return (oid, cid, status, reason, version, placed), lines


async def _flush(connection: asyncpg.Connection, outbox: _Outbox) -> int:
    count = len(outbox.rows)
    if count:
        await connection.copy_records_to_table(
            "outbox", records=outbox.rows, columns=_OUTBOX_COLUMNS
        )
        outbox.rows.clear()
    return count


async def rebuild_all(stores: Any) -> float:
    """Build every read model from the log in one pass (`shop projections rebuild --all`);
    seconds taken."""
    from app.pipeline.rebuild import rebuild
    from app.projections.registry import PROJECTIONS
    from app.runtime.bootstrap import open_stores

    async with open_stores(stores.settings(log_level="warning")) as opened:
        with progress() as bar:
            task = bar.add_task("rebuild every read model", total=None)

            def report(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            started = time.perf_counter()
            await rebuild(PROJECTIONS, opened.read_engine, opened.write_engine, report)
            return time.perf_counter() - started


def sample_ids(dataset: Dataset, count: int = 1000) -> dict[str, list[str]]:
    """Ids the load generators pick from: `count` customers and orders drawn at random
    (with repeats), every product."""
    rng = random.Random(11)
    return {
        "customers": [
            str(customer_id(rng.randrange(1, dataset.customers + 1))) for _ in range(count)
        ],
        "products": [str(product_id(n)) for n in range(1, dataset.products + 1)],
        "orders": [
            str(order_id(rng.randrange(1, dataset.orders + 1)))
            for _ in range(count if dataset.orders else 0)
        ],
    }


def all_ids(dataset: Dataset) -> dict[str, Iterator[str]]:
    """Every order and customer id of the data set, for loads that draw from all of them."""
    return {
        "orders": (str(order_id(n)) for n in range(1, dataset.orders + 1)),
        "customers": (str(customer_id(n)) for n in range(1, dataset.customers + 1)),
    }
