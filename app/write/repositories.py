"""Repositories: load aggregates and hand back what to write, for the command's one write
statement (app/write/write_set.py).

What a command will change is loaded with a row lock when the unit of work locks (`locking`),
and without one on a command's first attempt: then the write statement itself checks that
each row is still as it was read, and the command runs again, locking, if one is not.

The statements are plain SQL on the command's asyncpg connection, each prepared once per
connection: a command pays a round trip per statement and nothing for building it. Their
columns are those of app/write/tables.py (the migrations' model of the write store)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

import asyncpg

from app.events import PlacedLine
from app.write import write_set
from app.write.domain.aggregate import Aggregate
from app.write.domain.customer import Customer
from app.write.domain.order import Order, OrderStatus
from app.write.domain.product import Product
from app.write.remembered import Remembered


class Repository:
    """Remembers every aggregate it handed out or was given, for the unit of work to store."""

    def __init__(
        self,
        connection: asyncpg.Connection,
        *,
        locking: bool = True,
        memory: Remembered | None = None,
    ) -> None:
        self.connection = connection
        self.locking = locking
        self.for_update = " FOR UPDATE" if locking else ""
        # What this process last knew (app/write/remembered.py), and whether a read came
        # from there instead of the store.
        self.memory = memory
        self.from_memory = False
        self.new: list[Aggregate] = []
        self.loaded: dict[UUID, int] = {}  # id -> version when loaded
        self.seen: list[Aggregate] = []

    def add(self, aggregate: Aggregate) -> None:
        self.new.append(aggregate)
        self.seen.append(aggregate)

    def _track(self, aggregate: Aggregate) -> None:
        self.loaded[aggregate.id] = aggregate.version
        self.seen.append(aggregate)

    def loaded_aggregates(self) -> list[Aggregate]:
        """Aggregates loaded here (new ones excluded)."""
        return [a for a in self.seen if a.id in self.loaded]


class CustomerRepository(Repository):
    async def get(self, customer_id: UUID) -> Customer | None:
        """The customer (remembered, if this process has read it: customers never change)."""
        row = self.memory.customer(customer_id) if self.memory is not None else None
        if row is None:
            row = await self.connection.fetchrow(
                "SELECT id, version, email, name, registered_at FROM customers WHERE id = $1",
                customer_id,
            )
            if row is None:
                return None
            if self.memory is not None:
                self.memory.keep_customers([row])
        customer = Customer(*row)
        self._track(customer)
        return customer

    async def email_taken(self, email: str) -> bool:
        query = "SELECT EXISTS (SELECT FROM customers WHERE email = $1)"
        return bool(await self.connection.fetchval(query, email))

    def as_written(self) -> list[tuple[Any, ...]]:
        """The new customers (for `Remembered`)."""
        return [(c.id, c.version, c.email, c.name, c.registered_at)
                for c in self.new if isinstance(c, Customer)]  # fmt: skip

    def changes(self) -> write_set.Columns:
        """The new customers, for the command's write statement (app/write/write_set.py)."""
        return write_set.columns(
            write_set.NEW_CUSTOMERS,
            ((c.id, c.email, c.name, c.version, c.registered_at)
             for c in self.new if isinstance(c, Customer)),
        )  # fmt: skip


class ProductRepository(Repository):
    def __init__(
        self,
        connection: asyncpg.Connection,
        *,
        locking: bool = True,
        memory: Remembered | None = None,
    ) -> None:
        super().__init__(connection, locking=locking, memory=memory)
        self.was: dict[UUID, tuple[int, int, int]] = {}  # id -> (price, stock, version) read

    async def sku_taken(self, sku: str) -> bool:
        query = "SELECT EXISTS (SELECT FROM products WHERE sku = $1)"
        return bool(await self.connection.fetchval(query, sku))

    async def reserved_units(self, product_id: UUID) -> int:
        """Units of the product held by orders that may still be cancelled."""
        query = (
            "SELECT coalesce(sum(l.quantity), 0) FROM order_lines l "
            "JOIN orders o ON o.id = l.order_id "
            "WHERE l.product_id = $1 AND o.status IN ('PLACED', 'PAID')"
        )
        return int(await self.connection.fetchval(query, product_id) or 0)

    async def lock(self, product_ids: Iterable[UUID]) -> dict[UUID, Product]:
        """Load products (locking them, always in id order, so concurrent orders cannot
        deadlock), each noted as it was read. Unlocked, from what this process remembers if
        it remembers them all: the write statement checks them as it checks a read."""
        ids = sorted(set(product_ids))
        if not ids:
            return {}
        rows: Sequence[Sequence[Any]] | None = None
        if not self.locking and self.memory is not None:
            rows = self.memory.products(ids)
            self.from_memory = rows is not None
        if rows is None:
            query = (
                "SELECT id, version, sku, name, price_cents, stock FROM products "
                "WHERE id = ANY($1::uuid[]) ORDER BY id" + self.for_update
            )
            rows = await self.connection.fetch(query, ids)
            if self.memory is not None:
                self.memory.keep_products(rows)
        found = {}
        for row in rows:
            product = Product(*row)
            self._track(product)
            self.was[product.id] = (product.price_cents, product.stock, product.version)
            found[product.id] = product
        return found

    def as_written(self) -> list[tuple[Any, ...]]:
        """Each product loaded or added, as the command leaves it (for `Remembered`)."""
        return [(p.id, p.version, p.sku, p.name, p.price_cents, p.stock)
                for p in self.seen if isinstance(p, Product)]  # fmt: skip

    def changes(self) -> write_set.Columns:
        """New products, and every locked one written back (an order changes stock without
        a new version)."""
        return {
            **write_set.columns(
                write_set.NEW_PRODUCTS,
                ((p.id, p.sku, p.name, p.price_cents, p.stock, p.version, p.created_at)
                 for p in self.new if isinstance(p, Product)),
            ),
            **write_set.columns(
                write_set.CHANGED_PRODUCTS,
                ((p.id, p.price_cents, p.stock, p.version, *self.was[p.id])
                 for p in self.loaded_aggregates() if isinstance(p, Product)),
            ),
        }  # fmt: skip


class OrderRepository(Repository):
    async def owner(self, order_id: UUID) -> UUID | None:
        """The customer who placed the order (it never changes), or None if there is none."""
        query = "SELECT customer_id FROM orders WHERE id = $1"
        owner: UUID | None = await self.connection.fetchval(query, order_id)
        return owner

    async def lock(self, order_id: UUID) -> Order | None:
        """Load one order with its lines (locking it; its lines never change)."""
        row = await self.connection.fetchrow(
            "SELECT id, version, customer_id, status, placed_at, cancel_reason FROM orders "
            "WHERE id = $1" + self.for_update,
            order_id,
        )
        if row is None:
            return None
        line_rows = await self.connection.fetch(
            "SELECT product_id, sku, product_name, unit_price_cents, quantity FROM order_lines "
            "WHERE order_id = $1 ORDER BY line_no",
            order_id,
        )
        lines = tuple(PlacedLine.priced(*line) for line in line_rows)
        order = Order(
            row["id"], row["version"], row["customer_id"], OrderStatus(row["status"]), lines,
            row["placed_at"], row["cancel_reason"],
        )  # fmt: skip
        self._track(order)
        return order

    def changes(self) -> write_set.Columns:
        """New orders with their lines, and the loaded orders that changed."""
        new = [o for o in self.new if isinstance(o, Order)]
        changed = [
            o for o in self.loaded_aggregates()
            if isinstance(o, Order) and o.version != self.loaded[o.id]
        ]  # fmt: skip
        return {
            **write_set.columns(
                write_set.NEW_ORDERS,
                ((o.id, o.customer_id, o.status.value, o.cancel_reason, o.version, o.placed_at)
                 for o in new),
            ),
            **write_set.columns(
                write_set.NEW_LINES,
                ((o.id, n, line.product_id, line.sku, line.product_name,
                  line.unit_price_cents, line.quantity)
                 for o in new for n, line in enumerate(o.lines)),
            ),
            **write_set.columns(
                write_set.CHANGED_ORDERS,
                ((o.id, o.status.value, o.cancel_reason, o.version, self.loaded[o.id])
                 for o in changed),
            ),
        }  # fmt: skip
