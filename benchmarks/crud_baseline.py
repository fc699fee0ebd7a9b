"""The CRUD baseline: the same GraphQL fields served straight from the normalized write
tables, with joins and aggregates computed per request, on the same stack (strawberry,
starlette, uvicorn, SQLAlchemy async over asyncpg). No read model is touched.

It is the design the read models replace, built as a competent CRUD app would be: one SQL
statement per field, and the indexes such an app would add (made by `prepare`):
orders(customer_id, placed_at DESC, id DESC), orders(placed_at), order_lines(product_id).
Cursors are offsets (only first pages are measured).

Run: `python -m benchmarks.crud_baseline --database-url postgresql://... --port 8100`.
"""

from __future__ import annotations

import argparse
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import Annotated, Any

import strawberry
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from strawberry.asgi import GraphQL
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.types import Info

from app.adapters.postgres import create_engine
from app.graphql.ids import parse_id
from app.graphql.scalars import SCALARS, Long

INDEXES = (
    "CREATE INDEX IF NOT EXISTS crud_orders_customer "
    "ON orders (customer_id, placed_at DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS crud_orders_placed ON orders (placed_at)",
    "CREATE INDEX IF NOT EXISTS crud_order_lines_product ON order_lines (product_id)",
)

_ORDER = text("""
SELECT o.id, o.status, o.version, o.placed_at, o.cancel_reason,
       c.id AS customer_id, c.name AS customer_name, c.email AS customer_email,
       l.lines, l.item_count, l.total_cents
FROM orders o
JOIN customers c ON c.id = o.customer_id
CROSS JOIN LATERAL (
    SELECT json_agg(json_build_object(
               'product_id', x.product_id, 'sku', x.sku, 'product_name', x.product_name,
               'quantity', x.quantity, 'unit_price_cents', x.unit_price_cents)
           ORDER BY x.line_no) AS lines,
           sum(x.quantity) AS item_count, sum(x.quantity * x.unit_price_cents) AS total_cents
    FROM order_lines x WHERE x.order_id = o.id
) l
WHERE o.id = :id
""")

_CUSTOMER_ORDERS = text("""
SELECT o.id, o.status, o.version, o.placed_at, o.cancel_reason,
       c.id AS customer_id, c.name AS customer_name, c.email AS customer_email,
       NULL AS lines, t.item_count, t.total_cents, count(*) OVER () AS total_count
FROM orders o
JOIN customers c ON c.id = o.customer_id
CROSS JOIN LATERAL (
    SELECT sum(x.quantity) AS item_count, sum(x.quantity * x.unit_price_cents) AS total_cents
    FROM order_lines x WHERE x.order_id = o.id
) t
WHERE o.customer_id = :customer
ORDER BY o.placed_at DESC, o.id DESC
LIMIT :limit OFFSET :offset
""")

_CUSTOMERS_ORDER = {
    "NEWEST": "c.registered_at DESC, c.id DESC",
    "TOTAL_SPENT_DESC": "total_spent_cents DESC, c.id",
    "NAME": "lower(c.name), c.id",
}
_CUSTOMERS = """
SELECT c.id, c.email, c.name, c.registered_at, c.version,
       count(DISTINCT o.id) AS order_count,
       coalesce(sum(l.quantity * l.unit_price_cents), 0) AS total_spent_cents,
       max(o.placed_at) AS last_order_at
FROM customers c
LEFT JOIN orders o ON o.customer_id = c.id AND o.status <> 'CANCELLED'
LEFT JOIN order_lines l ON l.order_id = o.id
GROUP BY c.id
ORDER BY {order}
LIMIT :limit OFFSET :offset
"""

_PRODUCTS_ORDER = {
    "NAME": "lower(p.name), p.id",
    "PRICE_ASC": "p.price_cents, p.id",
    "PRICE_DESC": "p.price_cents DESC, p.id",
    "UNITS_SOLD_DESC": "units_sold DESC, p.id",
}
_PRODUCTS = """
SELECT p.id, p.sku, p.name, p.price_cents, p.stock, p.version,
       coalesce(sum(l.quantity) FILTER (WHERE o.id IS NOT NULL), 0) AS units_sold,
       coalesce(sum(l.quantity * l.unit_price_cents) FILTER (WHERE o.id IS NOT NULL), 0)
           AS revenue_cents
FROM products p
LEFT JOIN order_lines l ON l.product_id = p.id
LEFT JOIN orders o ON o.id = l.order_id AND o.status <> 'CANCELLED'
GROUP BY p.id
ORDER BY {order}
LIMIT :limit OFFSET :offset
"""

_SALES = text("""
SELECT (o.placed_at AT TIME ZONE 'UTC')::date AS day,
       count(DISTINCT o.id) AS orders_placed,
       count(DISTINCT o.id) FILTER (WHERE o.status = 'CANCELLED') AS orders_cancelled,
       coalesce(sum(l.quantity) FILTER (WHERE o.status <> 'CANCELLED'), 0) AS items_sold,
       coalesce(sum(l.quantity * l.unit_price_cents) FILTER (WHERE o.status <> 'CANCELLED'), 0)
           AS revenue_cents
FROM orders o
JOIN order_lines l ON l.order_id = o.id
WHERE o.placed_at >= :start AND o.placed_at < :end
GROUP BY 1
ORDER BY 1
""")


@strawberry.enum
class CustomerOrderBy(Enum):
    NEWEST = "NEWEST"
    TOTAL_SPENT_DESC = "TOTAL_SPENT_DESC"
    NAME = "NAME"


@strawberry.enum
class ProductOrderBy(Enum):
    NAME = "NAME"
    PRICE_ASC = "PRICE_ASC"
    PRICE_DESC = "PRICE_DESC"
    UNITS_SOLD_DESC = "UNITS_SOLD_DESC"


@strawberry.type
class OrderCustomer:
    id: strawberry.ID
    name: str
    email: str


@strawberry.type
class OrderLine:
    product_id: strawberry.ID
    sku: str
    product_name: str
    quantity: int
    unit_price_cents: Long
    line_total_cents: Long


@strawberry.type
class Order:
    id: strawberry.ID
    status: str
    customer: OrderCustomer
    lines: list[OrderLine]
    item_count: int
    total_cents: Long
    placed_at: datetime
    updated_at: datetime
    cancel_reason: str | None
    version: int

    @classmethod
    def from_row(cls, row: Any) -> Order:
        return cls(
            id=strawberry.ID(str(row.id)),
            status=row.status,
            customer=OrderCustomer(
                id=strawberry.ID(str(row.customer_id)),
                name=row.customer_name,
                email=row.customer_email,
            ),
            lines=[
                OrderLine(
                    product_id=strawberry.ID(str(x["product_id"])),
                    sku=x["sku"],
                    product_name=x["product_name"],
                    quantity=x["quantity"],
                    unit_price_cents=x["unit_price_cents"],
                    line_total_cents=x["quantity"] * x["unit_price_cents"],
                )
                for x in row.lines or ()
            ],
            item_count=int(row.item_count or 0),
            total_cents=Long(int(row.total_cents or 0)),
            placed_at=row.placed_at,
            updated_at=row.placed_at,
            cancel_reason=row.cancel_reason,
            version=row.version,
        )


@strawberry.type
class Customer:
    id: strawberry.ID
    email: str
    name: str
    registered_at: datetime
    order_count: int
    total_spent_cents: Long
    last_order_at: datetime | None
    version: int


@strawberry.type
class Product:
    id: strawberry.ID
    sku: str
    name: str
    price_cents: Long
    stock: int
    units_sold: int
    revenue_cents: Long
    version: int


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class OrderEdge:
    cursor: str
    node: Order


@strawberry.type
class OrderConnection:
    edges: list[OrderEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type
class CustomerEdge:
    cursor: str
    node: Customer


@strawberry.type
class CustomerConnection:
    edges: list[CustomerEdge]
    page_info: PageInfo


@strawberry.type
class ProductEdge:
    cursor: str
    node: Product


@strawberry.type
class ProductConnection:
    edges: list[ProductEdge]
    page_info: PageInfo


@strawberry.type
class DailySales:
    date: date
    orders_placed: int
    orders_cancelled: int
    items_sold: int
    revenue_cents: Long


@strawberry.input
class OrderFilter:
    customer_id: strawberry.ID | None = None


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode()


def _offset(after: str | None) -> int:
    return int(base64.urlsafe_b64decode(after.encode())) if after else 0


def _page(rows: list[Any], start: int, first: int) -> tuple[list[tuple[str, Any]], PageInfo]:
    shown = rows[:first]
    cursors = [(_cursor(start + n + 1), row) for n, row in enumerate(shown)]
    end = cursors[-1][0] if cursors else None
    return cursors, PageInfo(has_next_page=len(rows) > first, end_cursor=end)


def _engine(info: Info) -> AsyncEngine:
    engine: AsyncEngine = info.context["request"].app.state.engine
    return engine


async def _rows(info: Info, statement: Any, **params: Any) -> list[Any]:
    async with _engine(info).connect() as connection:
        return list(await connection.execute(statement, params))


@strawberry.type
class Query:
    @strawberry.field
    async def order(self, info: Info, id: strawberry.ID) -> Order | None:
        key = parse_id(id)
        rows = await _rows(info, _ORDER, id=key) if key else []
        return Order.from_row(rows[0]) if rows else None

    @strawberry.field
    async def orders(
        self, info: Info, filter: OrderFilter | None = None, first: int = 20,
        after: str | None = None,
    ) -> OrderConnection:  # fmt: skip
        customer = parse_id(filter.customer_id) if filter and filter.customer_id else None
        if customer is None:
            raise ValueError("the baseline lists orders by customer only")
        start = _offset(after)
        rows = await _rows(info, _CUSTOMER_ORDERS, customer=customer, limit=first + 1,
                           offset=start)  # fmt: skip
        edges, page = _page(rows, start, first)
        total = rows[0].total_count if rows else 0
        return OrderConnection(
            edges=[OrderEdge(cursor=c, node=Order.from_row(r)) for c, r in edges],
            page_info=page,
            total_count=total,
        )

    @strawberry.field
    async def customers(
        self, info: Info, first: int = 20, after: str | None = None,
        order_by: CustomerOrderBy = CustomerOrderBy.NEWEST,
    ) -> CustomerConnection:  # fmt: skip
        start = _offset(after)
        statement = text(_CUSTOMERS.format(order=_CUSTOMERS_ORDER[order_by.value]))
        rows = await _rows(info, statement, limit=first + 1, offset=start)
        edges, page = _page(rows, start, first)
        return CustomerConnection(
            edges=[
                CustomerEdge(
                    cursor=c,
                    node=Customer(
                        id=strawberry.ID(str(r.id)),
                        email=r.email,
                        name=r.name,
                        registered_at=r.registered_at,
                        order_count=r.order_count,
                        total_spent_cents=Long(int(r.total_spent_cents)),
                        last_order_at=r.last_order_at,
                        version=r.version,
                    ),
                )
                for c, r in edges
            ],
            page_info=page,
        )

    @strawberry.field
    async def products(
        self, info: Info, first: int = 20, after: str | None = None,
        order_by: ProductOrderBy = ProductOrderBy.NAME,
    ) -> ProductConnection:  # fmt: skip
        start = _offset(after)
        statement = text(_PRODUCTS.format(order=_PRODUCTS_ORDER[order_by.value]))
        rows = await _rows(info, statement, limit=first + 1, offset=start)
        edges, page = _page(rows, start, first)
        return ProductConnection(
            edges=[
                ProductEdge(
                    cursor=c,
                    node=Product(
                        id=strawberry.ID(str(r.id)),
                        sku=r.sku,
                        name=r.name,
                        price_cents=r.price_cents,
                        stock=r.stock,
                        units_sold=r.units_sold,
                        revenue_cents=Long(int(r.revenue_cents)),
                        version=r.version,
                    ),
                )
                for c, r in edges
            ],
            page_info=page,
        )

    @strawberry.field
    async def sales_report(
        self, info: Info, from_: Annotated[date, strawberry.argument(name="from")], to: date
    ) -> list[DailySales]:
        # As the contract says: every UTC day in [from, to], zeros where nothing happened.
        start = datetime(from_.year, from_.month, from_.day, tzinfo=UTC)
        end = datetime(to.year, to.month, to.day, tzinfo=UTC) + timedelta(days=1)
        rows = {r.day: r for r in await _rows(info, _SALES, start=start, end=end)}
        days = [from_ + timedelta(days=n) for n in range((to - from_).days + 1)]
        return [
            DailySales(
                date=day, orders_placed=r.orders_placed, orders_cancelled=r.orders_cancelled,
                items_sold=r.items_sold, revenue_cents=Long(int(r.revenue_cents)),
            )
            if (r := rows.get(day))
            else DailySales(date=day, orders_placed=0, orders_cancelled=0, items_sold=0,
                            revenue_cents=Long(0))
            for day in days
        ]  # fmt: skip


schema = strawberry.Schema(
    query=Query,
    extensions=[ParserCache, ValidationCache],
    config=StrawberryConfig(scalar_map=SCALARS),
)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def create_app(database_url: str) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_engine(database_url, pool_size=20, connect_timeout_s=10)
        async with engine.begin() as connection:
            for statement in INDEXES:
                await connection.execute(text(statement))
            await connection.execute(text("ANALYZE orders, order_lines"))
        app.state.engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        try:
            yield
        finally:
            await engine.dispose()

    routes = [
        Route("/graphql", GraphQL(schema), methods=["GET", "POST"]),
        Route("/healthz", healthz),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.crud_baseline")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    app = create_app(args.database_url)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
