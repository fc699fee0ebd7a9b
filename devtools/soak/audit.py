"""The soak's audit, once the projections have caught up: is anything lost, doubled or wrong?

(a) The read models equal a replay of the whole event log into an empty read store.
(b) Every acknowledged mutation's event is in the log exactly once, says what was asked,
    and has the commandId's idempotency record; the log holds no other event.
(c) Every product's stock is initial + restocks - reserved + released, by the clients'
    ledger, the log, the write store and the read model alike, and never went below zero.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.events import (
    CustomerRegistered,
    Event,
    OrderCancelled,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    ProductCreated,
    ProductPriceChanged,
    ProductRestocked,
)
from app.events.serialization import EventRecord
from app.projections.registry import PROJECTIONS
from devtools.read_model_check import (
    READ_TABLES,
    differing_rows,
    read_models,
    replay_log,
    stock_changes,
    whole_log,
)
from devtools.soak.load import Ledger, Mutation
from devtools.soak.stores import SoakDatabases

EVENT_OF: dict[str, type[Event]] = {
    "registerCustomer": CustomerRegistered,
    "createProduct": ProductCreated,
    "changeProductPrice": ProductPriceChanged,
    "restockProduct": ProductRestocked,
    "placeOrder": OrderPlaced,
    "payOrder": OrderPaid,
    "shipOrder": OrderShipped,
    "cancelOrder": OrderCancelled,
}


@dataclass(frozen=True)
class Discrepancy:
    """Something the audit found wrong: which check, and what exactly."""

    check: str  # "read models", "event log", "stock" or "pipeline"
    detail: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.detail}"


@dataclass(frozen=True)
class Audit:
    events: int
    read_model_rows: int
    mutations: int  # acknowledged, each checked against the log
    products: int
    discrepancies: tuple[Discrepancy, ...]


async def audit(databases: SoakDatabases, ledger: Ledger) -> Audit:
    log = await whole_log(databases.write)
    found: list[Discrepancy] = []
    rows = await _read_models_equal_a_replay(databases, found)
    records = dict(await _rows(databases.write, "SELECT command_id, result FROM idempotency"))
    acknowledged = list(ledger.with_outcome("acknowledged"))
    _each_mutation_once(ledger, acknowledged, log, records, found)
    stores = {
        "write store": dict(await _rows(databases.write, "SELECT id::text, stock FROM products")),
        "read model": dict(
            await _rows(databases.read, "SELECT id::text, stock FROM product_catalogue")
        ),
    }
    _stock_adds_up(acknowledged, log, stores, found)
    parked = await _rows(databases.read, "SELECT count(*) FROM dead_letters")
    found.extend(_loose_ends(ledger, parked[0][0]))
    return Audit(len(log), rows, len(acknowledged), len(ledger.products), tuple(found))


async def _rows(engine: AsyncEngine, query: str) -> list[Any]:
    async with engine.connect() as connection:
        return list((await connection.execute(text(query))).all())


async def _read_models_equal_a_replay(databases: SoakDatabases, found: list[Discrepancy]) -> int:
    """(a): replay the log into the emptied replay store and compare every row."""
    replayed = [*READ_TABLES, *(f"{p.name}_applied" for p in PROJECTIONS)]
    async with databases.replay.begin() as connection:
        await connection.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in replayed)))
    await replay_log(databases.write, databases.replay)
    live, rebuilt = await read_models(databases.read), await read_models(databases.replay)
    for table, key in differing_rows(live, rebuilt):
        found.append(
            Discrepancy(
                "read models",
                f"{table} {key}: live {_row(live[table], key)}, "
                f"rebuilt from the log {_row(rebuilt[table], key)}",
            )
        )
    return sum(len(rows) for rows in live.values())


def _row(rows: Iterable[tuple[Any, ...]], key: Any) -> str:
    found = next((row for row in rows if row[0] == key), None)
    return "(none)" if found is None else str(found)[:300]


def _each_mutation_once(
    ledger: Ledger,
    acknowledged: list[Mutation],
    log: list[EventRecord],
    records: dict[str, dict[str, Any]],
    found: list[Discrepancy],
) -> None:
    """(b): acknowledged mutations and logged events match one to one."""
    by_version = {(str(e.aggregate_id), e.aggregate_version): e for e in log}
    claimed: dict[tuple[str, int], str] = {}
    for mutation in acknowledged:
        key = (mutation.aggregate_id, mutation.version)
        event = by_version.get(key)
        said = f"{mutation.name} {mutation.command_id} (acknowledged: {key[0]} v{key[1]})"
        if event is None:
            found.append(Discrepancy("event log", f"{said}: no such event in the log"))
        elif key in claimed:
            found.append(Discrepancy("event log", f"{said}: the event of {claimed[key]} too"))
        elif not _is_what_was_asked(mutation, event.event):
            found.append(Discrepancy("event log", f"{said}: the log has {event.event}"))
        claimed.setdefault(key, mutation.command_id)
        record = records.get(mutation.command_id)
        if record is None or (record["id"], record["v"]) != key:
            found.append(Discrepancy("event log", f"{said}: idempotency record {record}"))
    for key in by_version.keys() - claimed.keys():
        event = by_version[key]
        found.append(
            Discrepancy(
                "event log",
                f"{event.event_type} of {event.aggregate_type} {key[0]} v{key[1]}: "
                "no acknowledged mutation made it (a duplicate or a stray)",
            )
        )
    for command_id in records:
        sent = ledger.mutations.get(command_id)
        if sent is None or sent.outcome == "rejected":
            what = "never sent" if sent is None else "refused"
            found.append(Discrepancy("event log", f"{command_id} committed, yet {what}"))


def _is_what_was_asked(mutation: Mutation, event: Event) -> bool:
    asked = mutation.input
    same_aggregate = str(event.aggregate_id) == mutation.aggregate_id
    if type(event) is not EVENT_OF[mutation.name] or not same_aggregate:
        return False
    match event:
        case CustomerRegistered():
            return (event.email, event.name) == (asked["email"], asked["name"])
        case ProductCreated():
            return (event.sku, event.price_cents, event.stock) == (
                asked["sku"], asked["priceCents"], asked["stock"]
            )  # fmt: skip
        case ProductPriceChanged():
            return bool(event.price_cents == asked["priceCents"])
        case ProductRestocked():
            return bool(event.quantity == asked["quantity"])
        case OrderPlaced():
            lines = [(str(line.product_id), line.quantity) for line in event.lines]
            wanted = [(line["productId"], line["quantity"]) for line in asked["lines"]]
            return str(event.customer_id) == asked["customerId"] and lines == wanted
    return True  # paid, shipped, cancelled: the order and the event type say it all


def _stock_adds_up(
    acknowledged: list[Mutation],
    log: list[EventRecord],
    stores: dict[str, dict[str, int]],
    found: list[Discrepancy],
) -> None:
    """(c): four accounts of each product's stock agree, and none went below zero."""
    accounts = {"acknowledged mutations": _stock_by_ledger(acknowledged), **stores}
    logged, lowest = _stock_by_log(log, found)
    accounts["event log"] = logged
    products = set().union(*accounts.values())
    for product in sorted(products):
        seen = {name: account.get(product) for name, account in accounts.items()}
        if len(set(seen.values())) != 1:
            found.append(Discrepancy("stock", f"product {product}: {seen}"))
        if lowest.get(product, 0) < 0 or any((s or 0) < 0 for s in seen.values()):
            found.append(Discrepancy("stock", f"product {product} went below zero: {seen}"))


def _stock_by_ledger(acknowledged: list[Mutation]) -> Counter[str]:
    """Initial + restocks - reserved + released, from what the clients were told."""
    stock: Counter[str] = Counter()
    placed = {m.aggregate_id: m.input["lines"] for m in acknowledged if m.name == "placeOrder"}
    for m in acknowledged:
        if m.name == "createProduct":
            stock[m.aggregate_id] += m.input["stock"]
        elif m.name == "restockProduct":
            stock[m.aggregate_id] += m.input["quantity"]
        elif m.name in ("placeOrder", "cancelOrder"):
            sign = -1 if m.name == "placeOrder" else 1
            for line in placed.get(m.aggregate_id, ()):
                stock[line["productId"]] += sign * line["quantity"]
    return stock


def _stock_by_log(
    log: list[EventRecord], found: list[Discrepancy]
) -> tuple[Counter[str], dict[str, int]]:
    """The balance after the whole log, and the lowest it reached on the way.

    Every command that changes a product's stock holds the product's row lock when it
    appends its event, so log order is the order the changes happened in for each product;
    each ProductRestocked carries the stock the write store counted, which must be the
    balance at that point."""
    stock: Counter[str] = Counter()
    lowest: dict[str, int] = {}
    for recorded in log:
        event = recorded.event
        for product, change in stock_changes(event):
            stock[product] += change
            lowest[product] = min(lowest.get(product, stock[product]), stock[product])
        if isinstance(event, ProductRestocked) and event.stock != stock[str(event.product_id)]:
            found.append(
                Discrepancy(
                    "stock",
                    f"product {event.product_id} v{recorded.aggregate_version}: restocked to "
                    f"{event.stock} by the write store, {stock[str(event.product_id)]} by the log",
                )
            )
    return stock, lowest


def _loose_ends(ledger: Ledger, parked: int) -> list[Discrepancy]:
    found = [
        Discrepancy("pipeline", f"{m.name} {m.command_id}: no answer after {m.attempts} tries")
        for m in ledger.with_outcome("unanswered")
    ]
    if parked:
        found.append(Discrepancy("pipeline", f"{parked} events parked in the dead letters"))
    return found
