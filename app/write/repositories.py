"""Repositories: load aggregates (locking what a command will change) and hand back what to
write, for the command's one write statement (app/write/write_set.py)."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.events import PlacedLine
from app.write import write_set
from app.write.domain.aggregate import Aggregate
from app.write.domain.customer import Customer
from app.write.domain.order import Order, OrderStatus
from app.write.domain.product import Product
from app.write.tables import customers, order_lines, orders, products


class Repository:
    """Remembers every aggregate it handed out or was given, for the unit of work to store."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection
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
        row = (
            await self.connection.execute(select(customers).where(customers.c.id == customer_id))
        ).one_or_none()
        if row is None:
            return None
        customer = Customer(row.id, row.version, row.email, row.name, row.registered_at)
        self._track(customer)
        return customer

    async def email_taken(self, email: str) -> bool:
        query = select(exists().where(customers.c.email == email))
        return bool(await self.connection.scalar(query))

    def changes(self) -> write_set.Columns:
        """The new customers, for the command's write statement (app/write/write_set.py)."""
        return write_set.columns(
            write_set.NEW_CUSTOMERS,
            ((c.id, c.email, c.name, c.version, c.registered_at)
             for c in self.new if isinstance(c, Customer)),
        )  # fmt: skip


class ProductRepository(Repository):
    async def sku_taken(self, sku: str) -> bool:
        return bool(await self.connection.scalar(select(exists().where(products.c.sku == sku))))

    async def reserved_units(self, product_id: UUID) -> int:
        """Units of the product held by orders that may still be cancelled."""
        query = (
            select(func.coalesce(func.sum(order_lines.c.quantity), 0))
            .join(orders, orders.c.id == order_lines.c.order_id)
            .where(order_lines.c.product_id == product_id)
            .where(orders.c.status.in_(("PLACED", "PAID")))
        )
        return int(await self.connection.scalar(query) or 0)

    async def lock(self, product_ids: Iterable[UUID]) -> dict[UUID, Product]:
        """Load and lock products, always in id order, so concurrent orders cannot deadlock."""
        ids = sorted(set(product_ids))
        if not ids:
            return {}
        query = (
            select(products).where(products.c.id.in_(ids)).order_by(products.c.id).with_for_update()
        )
        found = {}
        for row in await self.connection.execute(query):
            product = Product(row.id, row.version, row.sku, row.name, row.price_cents, row.stock)
            self._track(product)
            found[product.id] = product
        return found

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
                ((p.id, p.price_cents, p.stock, p.version)
                 for p in self.loaded_aggregates() if isinstance(p, Product)),
            ),
        }  # fmt: skip


class OrderRepository(Repository):
    async def owner(self, order_id: UUID) -> UUID | None:
        """The customer who placed the order (it never changes), or None if there is none."""
        result = await self.connection.execute(
            select(orders.c.customer_id).where(orders.c.id == order_id)
        )
        owner: UUID | None = result.scalar_one_or_none()
        return owner

    async def lock(self, order_id: UUID) -> Order | None:
        """Load and lock one order with its lines."""
        row = (
            await self.connection.execute(
                select(orders).where(orders.c.id == order_id).with_for_update()
            )
        ).one_or_none()
        if row is None:
            return None
        line_rows = await self.connection.execute(
            select(order_lines).where(order_lines.c.order_id == order_id).order_by("line_no")
        )
        lines = tuple(
            PlacedLine(r.product_id, r.sku, r.product_name, r.unit_price_cents, r.quantity)
            for r in line_rows
        )
        order = Order(
            row.id, row.version, row.customer_id, OrderStatus(row.status), lines, row.placed_at,
            row.cancel_reason,
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
                ((o.id, o.status.value, o.cancel_reason, o.version) for o in changed),
            ),
        }  # fmt: skip
