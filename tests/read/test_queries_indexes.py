"""Every filter and sort order of the lists is served by an index, not by a scan of the table.

The read tables are filled with 100k generated rows each; then the plans of the very queries
the resolvers run (built by app.queries) must hold an index scan and no sequential scan of
the big table.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from sqlalchemy import ClauseElement, Executable, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from app.queries.listings import (
    CUSTOMER_ORDERINGS,
    PRODUCT_ORDERINGS,
    OrderCriteria,
    customers_listing,
    orders_listing,
    products_listing,
)
from app.queries.pagination import Listing, count_query, decode_cursor, encode_cursor, page_query
from app.queries.rows import customer_query, order_query, product_query
from devtools.databases import Databases, open_engine, unique_tag

ROWS = 100_000
INDEX_NODES = {"Index Scan", "Index Only Scan", "Bitmap Index Scan"}
A_CUSTOMER = UUID("00000000-0000-4000-8000-000000000007")

FILL = [
    f"""INSERT INTO order_view (id, customer_id, customer_name, customer_email, status, lines,
          item_count, total_cents, placed_at, updated_at, version)
        SELECT gen_random_uuid(),
               ('00000000-0000-4000-8000-' || lpad(to_hex(g % 5000), 12, '0'))::uuid,
               'Customer', 'c@example.com',
               (ARRAY['PLACED','PAID','SHIPPED','CANCELLED'])[g % 4 + 1],
               '[]', 1, (g::bigint * 7919) % 100000,
               timestamptz '2025-01-01 00:00+00' + g * interval '5 minutes',
               timestamptz '2025-01-01 00:00+00' + g * interval '5 minutes', 1
        FROM generate_series(1, {ROWS}) AS g""",
    f"""INSERT INTO customer_summary (id, email, name, registered_at, order_count,
          total_spent_cents, version)
        SELECT gen_random_uuid(), 'c' || g || '@example.com', md5(g::text),
               timestamptz '2024-01-01 00:00+00' + g * interval '1 minute', g % 20,
               (g::bigint * 104729) % 1000000, CASE WHEN g % 100 = 0 THEN 0 ELSE 1 END
        FROM generate_series(1, {ROWS}) AS g""",
    f"""INSERT INTO product_catalogue (id, sku, name, price_cents, stock, units_sold,
          revenue_cents, version)
        SELECT gen_random_uuid(), 'SKU-' || g, 'Product ' || md5(g::text), (g * 31) % 50000,
               g % 7 - 2, (g * 17) % 3000, 0, CASE WHEN g % 100 = 0 THEN 0 ELSE 1 END
        FROM generate_series(1, {ROWS}) AS g""",
    "ANALYZE order_view",
    "ANALYZE customer_summary",
    "ANALYZE product_catalogue",
]

CUT = datetime(2025, 6, 1, tzinfo=UTC)
ORDER_FILTERS = {
    "none": OrderCriteria(),
    "customerId": OrderCriteria(customer_id=A_CUSTOMER),
    "status": OrderCriteria(statuses=("PAID",)),
    "statuses": OrderCriteria(statuses=("PLACED", "SHIPPED")),
    "placedFrom": OrderCriteria(placed_from=CUT),
    "placedTo": OrderCriteria(placed_to=CUT),
    "placedFrom+placedTo": OrderCriteria(
        placed_from=CUT, placed_to=datetime(2025, 6, 2, tzinfo=UTC)
    ),
    "minTotalCents": OrderCriteria(min_total_cents=99_900),
    "customerId+status": OrderCriteria(customer_id=A_CUSTOMER, statuses=("PAID", "PLACED")),
}


class Explain(Executable, ClauseElement):
    """EXPLAIN (FORMAT JSON) of a statement, with its bound parameters as they are sent."""

    inherit_cache = False

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement


@compiles(Explain, "postgresql")
def _compile_explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON) " + compiler.process(element.statement, **kw)


async def _plan(connection: AsyncConnection, statement: Any) -> dict[str, Any]:
    raw = (await connection.execute(Explain(statement))).scalar_one()
    plan: dict[str, Any] = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    return plan


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _assert_indexed(plan: dict[str, Any], table: str, what: str) -> None:
    nodes = list(_nodes(plan))
    scans = [n for n in nodes if n.get("Relation Name") == table or n["Node Type"] in INDEX_NODES]
    assert any(n["Node Type"] in INDEX_NODES for n in scans), (what, plan)
    assert not any(n["Node Type"] == "Seq Scan" for n in scans), (what, plan)


async def _assert_pages_indexed(
    connection: AsyncConnection, listing: Listing, table: str, what: str
) -> None:
    """The first page, and a page after a cursor from the middle of the list."""
    _assert_indexed(await _plan(connection, page_query(listing, 20)), table, what)
    rows = (await connection.execute(page_query(listing, 100))).mappings().all()
    if rows:
        row = rows[-1]
        keys = [row[f"_key{i}"] for i in range(len(listing.ordering.keys))]
        after = decode_cursor(encode_cursor(listing.ordering, keys), listing.ordering)
        plan = await _plan(connection, page_query(listing, 20, after))
        _assert_indexed(plan, table, f"{what} after a cursor")


@pytest.fixture(scope="module")
def filled_url(postgres_server_url: str, template_databases: Databases) -> Iterator[str]:
    """A migrated read store holding the generated rows, filled once for this module."""
    databases = Databases(postgres_server_url, unique_tag("shop_test"))
    asyncio.run(databases.create(template_databases))
    url = databases.url("read")

    async def fill() -> None:
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            for statement in FILL:
                await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(fill())
    try:
        yield url
    finally:
        asyncio.run(databases.drop())


@pytest.fixture
async def filled(filled_url: str) -> AsyncIterator[AsyncEngine]:
    async with open_engine(filled_url) as engine:
        yield engine


async def test_every_orders_filter_uses_an_index(filled: AsyncEngine) -> None:
    async with filled.connect() as connection:
        for name, criteria in ORDER_FILTERS.items():
            await _assert_pages_indexed(connection, orders_listing(criteria), "order_view", name)
        customer_count = count_query(orders_listing(ORDER_FILTERS["customerId"]))
        _assert_indexed(await _plan(connection, customer_count), "order_view", "a count")


async def test_every_customers_sort_uses_an_index(filled: AsyncEngine) -> None:
    async with filled.connect() as connection:
        for name, ordering in CUSTOMER_ORDERINGS.items():
            listing = customers_listing(ordering)
            await _assert_pages_indexed(connection, listing, "customer_summary", name)


async def test_every_products_sort_and_filter_uses_an_index(filled: AsyncEngine) -> None:
    async with filled.connect() as connection:
        for name, ordering in PRODUCT_ORDERINGS.items():
            for in_stock in (None, True, False):
                listing = products_listing(ordering, None, in_stock)
                what = f"{name}, inStock {in_stock}"
                await _assert_pages_indexed(connection, listing, "product_catalogue", what)
        searchable = await connection.scalar(
            text("SELECT count(*) FROM pg_indexes WHERE indexname = 'product_catalogue_search'")
        )
        if not searchable:
            pytest.skip("this PostgreSQL has no pg_trgm: product search scans")
        for name, ordering in PRODUCT_ORDERINGS.items():
            for search in ("c4ca4238", "sku-4242"):
                listing = products_listing(ordering, search, None)
                what = f"{name}, search {search}"
                await _assert_pages_indexed(connection, listing, "product_catalogue", what)
                plan = await _plan(connection, count_query(listing))
                _assert_indexed(plan, "product_catalogue", f"count of {what}")


async def test_reading_one_row_uses_its_primary_key(filled: AsyncEngine) -> None:
    some = UUID(int=7)
    async with filled.connect() as connection:
        for query, table in (
            (order_query(some), "order_view"),
            (customer_query(some), "customer_summary"),
            (product_query(some), "product_catalogue"),
        ):
            _assert_indexed(await _plan(connection, query), table, table)
