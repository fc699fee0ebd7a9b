"""Lists: every filter and sort order, page sizes, and keyset cursors, over HTTP.

Rows are written straight into the read tables, so ties and times are exactly as a test
needs them; the API reads nothing else.
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.projections.tables import customer_summary, order_view, product_catalogue
from app.runtime.bootstrap import Stores
from devtools.graphql_client import GraphQLClient
from tests.support.read_queries import (
    CUSTOMER_ORDERS,
    CUSTOMERS,
    ORDERS,
    PRODUCTS,
    connection_of,
    error_of,
    page_through,
    shown_customer,
)

Row = dict[str, Any]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T2 = T0 + timedelta(hours=2)
STATUSES = ("PLACED", "PAID", "SHIPPED", "CANCELLED")


def _order(rng: random.Random, customer: uuid.UUID, placed_at: datetime) -> Row:
    return {
        "id": uuid.UUID(int=rng.getrandbits(128)), "customer_id": customer,
        "customer_name": "C", "customer_email": "c@example.com",
        "status": rng.choice(STATUSES), "lines": [], "item_count": 1,
        "total_cents": rng.choice((100, 250, 999, 1000, 5000)), "cancel_reason": None,
        "placed_at": placed_at, "updated_at": placed_at, "version": 1,
    }  # fmt: skip


def _customer(rng: random.Random, name: str, version: int = 1) -> Row:
    return {
        "id": uuid.UUID(int=rng.getrandbits(128)), "email": f"{uuid.uuid4().hex}@example.com",
        "name": name, "registered_at": T0 + timedelta(minutes=rng.randrange(5)),
        "order_count": 1, "total_spent_cents": rng.choice((0, 100, 100, 700, 2000)),
        "last_order_at": None, "version": version,
    }  # fmt: skip


def _product(rng: random.Random, sku: str, name: str, version: int = 1) -> Row:
    return {
        "id": uuid.UUID(int=rng.getrandbits(128)), "sku": sku, "name": name,
        "price_cents": rng.choice((100, 100, 250, 9999)), "stock": rng.choice((0, 0, 3, 40)),
        "units_sold": rng.choice((0, 5, 5, 17)), "revenue_cents": 0, "version": version,
    }  # fmt: skip


async def _insert(engine: AsyncEngine, table: Any, rows: list[Row]) -> None:
    async with engine.begin() as connection:
        await connection.execute(insert(table), rows)


def _ids(rows: list[Row]) -> list[str]:
    return [str(row["id"]) for row in rows]


def _newest_first(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: (r["placed_at"], r["id"]), reverse=True)


@pytest.fixture
def rng() -> random.Random:
    return random.Random(20261122)


async def test_orders_page_newest_first_with_ties_by_id(
    gql: GraphQLClient, stores: Stores, rng: random.Random
) -> None:
    customers = [uuid.uuid4() for _ in range(3)]
    # Several orders share each moment: the id breaks the tie.
    rows = [_order(rng, rng.choice(customers), T0 + timedelta(hours=rng.randrange(6)))
            for _ in range(40)]  # fmt: skip
    await _insert(stores.read_engine, order_view, rows)
    for first in (1, 7, 40, 100):
        nodes = await page_through(gql, ORDERS, first)
        assert [n["id"] for n in nodes] == _ids(_newest_first(rows))


FILTERS: list[tuple[dict[str, Any], Callable[[Row, list[uuid.UUID]], bool]]] = [
    ({"customerId": 0}, lambda r, c: r["customer_id"] == c[0]),
    ({"status": ["PAID"]}, lambda r, c: r["status"] == "PAID"),
    ({"status": ["PLACED", "SHIPPED"]}, lambda r, c: r["status"] in ("PLACED", "SHIPPED")),
    ({"status": []}, lambda r, c: False),
    ({"placedFrom": T2}, lambda r, c: r["placed_at"] >= T2),
    ({"placedTo": T2}, lambda r, c: r["placed_at"] < T2),
    ({"placedFrom": T0 + timedelta(hours=1), "placedTo": T0 + timedelta(hours=3)},
     lambda r, c: T0 + timedelta(hours=1) <= r["placed_at"] < T0 + timedelta(hours=3)),
    ({"minTotalCents": 1000}, lambda r, c: r["total_cents"] >= 1000),
    ({"customerId": 1, "status": ["PAID", "CANCELLED"], "minTotalCents": 250},
     lambda r, c: r["customer_id"] == c[1] and r["status"] in ("PAID", "CANCELLED")
     and r["total_cents"] >= 250),
    ({"customerId": "not-a-uuid"}, lambda r, c: False),
    ({}, lambda r, c: True),
]  # fmt: skip


async def test_each_orders_filter_selects_its_orders(
    gql: GraphQLClient, stores: Stores, rng: random.Random
) -> None:
    customers = [uuid.uuid4() for _ in range(3)]
    rows = [_order(rng, rng.choice(customers), T0 + timedelta(minutes=rng.randrange(300)))
            for _ in range(60)]  # fmt: skip
    await _insert(stores.read_engine, order_view, rows)
    for given, keep in FILTERS:
        filter_ = {
            key: (str(customers[value]) if key == "customerId" and isinstance(value, int)
                  else value.isoformat() if isinstance(value, datetime) else value)
            for key, value in given.items()
        }  # fmt: skip
        nodes = await page_through(gql, ORDERS, 3, filter=filter_)
        expected = _ids(_newest_first([r for r in rows if keep(r, customers)]))
        assert [n["id"] for n in nodes] == expected, given


async def test_a_status_repeated_40000_times_filters_like_once(
    gql: GraphQLClient, stores: Stores, rng: random.Random
) -> None:
    # More values than PostgreSQL takes bind parameters (32,767), within the body limit.
    rows = [_order(rng, uuid.uuid4(), T0 + timedelta(minutes=m)) for m in range(20)]
    await _insert(stores.read_engine, order_view, rows)
    nodes = await page_through(gql, ORDERS, 100, filter={"status": ["PAID"] * 40_000})
    assert [n["id"] for n in nodes] == _ids(
        _newest_first([r for r in rows if r["status"] == "PAID"])
    )


async def test_a_time_without_offset_is_taken_as_utc(
    gql: GraphQLClient, stores: Stores, rng: random.Random
) -> None:
    rows = [_order(rng, uuid.uuid4(), T0 + timedelta(hours=h)) for h in range(4)]
    await _insert(stores.read_engine, order_view, rows)
    naive = (T0 + timedelta(hours=2)).replace(tzinfo=None).isoformat()
    nodes = await page_through(gql, ORDERS, 10, filter={"placedFrom": naive})
    assert [n["id"] for n in nodes] == _ids(_newest_first(rows[2:]))


CUSTOMER_SORTS: dict[str, Callable[[Row], Any]] = {
    "NEWEST": lambda r: (-r["registered_at"].timestamp(), -r["id"].int),
    "TOTAL_SPENT_DESC": lambda r: (-r["total_spent_cents"], -r["id"].int),
    "NAME": lambda r: (r["name"].lower().encode(), r["id"]),
}


async def test_customers_come_in_each_sort_order(
    gql: GraphQLClient, stores: Stores, rng: random.Random
) -> None:
    names = ["alice", "Alice", "ALICE", "bob", "Bob", "Zoe", "zed", "Ada Lovelace", "ada", "a"]
    rows = [_customer(rng, rng.choice(names)) for _ in range(45)]
    ghosts = [_customer(rng, "ghost", version=0) for _ in range(3)]
    await _insert(stores.read_engine, customer_summary, rows + ghosts)
    for order_by, key in CUSTOMER_SORTS.items():
        for first in (4, 100):
            nodes = await page_through(gql, CUSTOMERS, first, orderBy=order_by)
            assert [n["id"] for n in nodes] == _ids(sorted(rows, key=key)), order_by
    default = await page_through(gql, CUSTOMERS, 100)
    assert [n["id"] for n in default] == _ids(sorted(rows, key=CUSTOMER_SORTS["NEWEST"]))


PRODUCT_SORTS: dict[str, Callable[[Row], Any]] = {
    "NAME": lambda r: (r["name"].lower().encode(), r["id"]),
    "PRICE_ASC": lambda r: (r["price_cents"], r["id"]),
    "PRICE_DESC": lambda r: (-r["price_cents"], -r["id"].int),
    "UNITS_SOLD_DESC": lambda r: (-r["units_sold"], r["id"]),
}


async def test_products_come_in_each_sort_order_and_filter(
    gql: GraphQLClient, stores: Stores, rng: random.Random
) -> None:
    names = ["Widget", "widget", "Gadget", "gizmo", "100% cotton", "50_50 blend", "5050 blend"]
    rows = [_product(rng, f"SKU-{n}", rng.choice(names)) for n in range(40)]
    ghosts = [_product(rng, f"GHOST-{n}", "Widget", version=0) for n in range(3)]
    await _insert(stores.read_engine, product_catalogue, rows + ghosts)
    filters: list[tuple[dict[str, Any], Callable[[Row], bool]]] = [
        ({}, lambda r: True),
        ({"inStock": True}, lambda r: r["stock"] > 0),
        ({"inStock": False}, lambda r: r["stock"] <= 0),
        ({"search": "WIDG"}, lambda r: "widg" in r["name"].lower()),
        ({"search": "sku-1"}, lambda r: "sku-1" in r["sku"].lower()),
        ({"search": "%"}, lambda r: "%" in r["name"]),
        ({"search": "0_5"}, lambda r: "0_5" in r["name"]),
        ({"search": "t sku-2"}, lambda r: "t sku-2" in f"{r['name']} {r['sku']}".lower()),
        ({"search": "g", "inStock": True}, lambda r: "g" in r["name"].lower() and r["stock"] > 0),
    ]
    for order_by, key in PRODUCT_SORTS.items():
        for given, keep in filters:
            nodes = await page_through(gql, PRODUCTS, 6, orderBy=order_by, filter=given)
            expected = _ids(sorted((r for r in rows if keep(r)), key=key))
            assert [n["id"] for n in nodes] == expected, (order_by, given)


async def test_a_page_holds_first_rows_from_1_to_100(
    gql: GraphQLClient, stores: Stores, rng: random.Random
) -> None:
    rows = [_product(rng, f"P{n:03}", f"Product {n:03}") for n in range(150)]
    await _insert(stores.read_engine, product_catalogue, rows)
    ordered = _ids(sorted(rows, key=PRODUCT_SORTS["NAME"]))

    one = connection_of(await gql.data(PRODUCTS, {"first": 1}))
    assert [e["node"]["id"] for e in one["edges"]] == ordered[:1]
    assert (one["pageInfo"]["hasNextPage"], one["totalCount"]) == (True, 150)
    hundred = connection_of(await gql.data(PRODUCTS, {"first": 100}))
    assert [e["node"]["id"] for e in hundred["edges"]] == ordered[:100]
    rest = connection_of(
        await gql.data(PRODUCTS, {"first": 100, "after": hundred["pageInfo"]["endCursor"]})
    )
    assert [e["node"]["id"] for e in rest["edges"]] == ordered[100:]
    assert rest["pageInfo"]["hasNextPage"] is False
    default = connection_of(await gql.data(PRODUCTS, {}))
    assert len(default["edges"]) == 20


async def test_the_last_full_page_says_there_is_no_next(
    gql: GraphQLClient, stores: Stores, rng: random.Random
) -> None:
    rows = [_order(rng, uuid.uuid4(), T0 + timedelta(seconds=n)) for n in range(10)]
    await _insert(stores.read_engine, order_view, rows)
    first = connection_of(await gql.data(ORDERS, {"first": 5}))
    second = connection_of(
        await gql.data(ORDERS, {"first": 5, "after": first["pageInfo"]["endCursor"]})
    )
    assert (first["pageInfo"]["hasNextPage"], second["pageInfo"]["hasNextPage"]) == (True, False)
    after_last = connection_of(
        await gql.data(ORDERS, {"first": 5, "after": second["pageInfo"]["endCursor"]})
    )
    assert after_last["edges"] == []
    assert after_last["pageInfo"] == {"hasNextPage": False, "endCursor": None}
    assert after_last["totalCount"] == 10


async def test_a_page_size_outside_1_to_100_is_a_validation_error(gql: GraphQLClient) -> None:
    customer = await shown_customer(gql)
    for first in (0, 101, -1):
        for document, variables in (
            (ORDERS, {}), (CUSTOMERS, {}), (PRODUCTS, {}), (CUSTOMER_ORDERS, {"id": customer}),
        ):  # fmt: skip
            error = await error_of(gql, document, first=first, **variables)
            assert error["extensions"]["code"] == "VALIDATION"
            assert error["message"] == f"first must be between 1 and 100, not {first}"


async def test_a_cursor_stays_put_while_newer_rows_arrive(
    gql: GraphQLClient, stores: Stores, rng: random.Random
) -> None:
    customer = uuid.uuid4()
    older = [_order(rng, customer, T0 + timedelta(minutes=n)) for n in range(12)]
    await _insert(stores.read_engine, order_view, older)
    page = connection_of(await gql.data(ORDERS, {"first": 5}))
    seen = [e["node"]["id"] for e in page["edges"]]

    newer = [_order(rng, customer, T0 + timedelta(days=1, minutes=n)) for n in range(3)]
    await _insert(stores.read_engine, order_view, newer)
    rest = await page_through(gql, ORDERS, 4, after=page["pageInfo"]["endCursor"])
    # page_through checks totalCount against what it saw; here the list grew meanwhile.
    assert seen + [n["id"] for n in rest] == _ids(_newest_first(older))


async def test_customer_orders_page_newest_first(
    gql: GraphQLClient, stores: Stores, rng: random.Random
) -> None:
    customer = await shown_customer(gql)
    mine = [_order(rng, uuid.UUID(customer), T0 + timedelta(minutes=rng.randrange(9)))
            for _ in range(13)]  # fmt: skip
    others = [_order(rng, uuid.uuid4(), T0) for _ in range(5)]
    await _insert(stores.read_engine, order_view, mine + others)
    nodes = await page_through(gql, CUSTOMER_ORDERS, 4, id=customer)
    assert [n["id"] for n in nodes] == _ids(_newest_first(mine))


def _forged(body: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


async def test_a_malformed_or_foreign_cursor_is_a_validation_error(
    gql: GraphQLClient, stores: Stores, rng: random.Random
) -> None:
    await _insert(stores.read_engine, product_catalogue, [_product(rng, "A", "a")])
    await _insert(stores.read_engine, customer_summary, [_customer(rng, "a")])
    by_name = connection_of(await gql.data(PRODUCTS, {"first": 1}))["pageInfo"]["endCursor"]
    customer_cursor = connection_of(await gql.data(CUSTOMERS, {"first": 1}))["pageInfo"][
        "endCursor"
    ]
    bad = [
        "garbage", "", "=", "a" * 5000, _forged([1, 2]), _forged({"v": 1}),
        _forged({"v": 2, "o": "products:name", "k": ["a", str(uuid.uuid4())]}),
        _forged({"v": 1, "o": "products:name", "k": ["a"]}),
        _forged({"v": 1, "o": "products:name", "k": [1, uuid.uuid4().hex]}),
        _forged({"v": 1, "o": "products:name", "k": ["a", "not-a-uuid"]}),
        _forged({"v": 1, "o": "products:price-asc", "k": [True, uuid.uuid4().hex]}),
        _forged({"v": 1, "o": "products:price-asc", "k": [2**70, uuid.uuid4().hex]}),
        _forged({"v": 1, "o": "products:name", "k": ["a\x00", uuid.uuid4().hex]}),
    ]  # fmt: skip
    for cursor in bad:
        for order_by in ("NAME", "PRICE_ASC"):
            error = await error_of(gql, PRODUCTS, after=cursor, orderBy=order_by)
            assert error["extensions"]["code"] == "VALIDATION", (cursor, error)
            assert "after" in error["message"]
    for document, cursor, variables in (
        (PRODUCTS, by_name, {"orderBy": "PRICE_DESC"}),
        (PRODUCTS, customer_cursor, {}),
        (ORDERS, by_name, {}),
        (CUSTOMERS, customer_cursor, {"orderBy": "NAME"}),
    ):
        error = await error_of(gql, document, after=cursor, **variables)
        assert error["extensions"]["code"] == "VALIDATION"
        assert "another list or sort order" in error["message"]


async def test_a_search_text_too_long_or_with_nul_is_a_validation_error(
    gql: GraphQLClient,
) -> None:
    for search, complaint in (("x" * 201, "at most 200"), ("a\x00b", "NUL")):
        error = await error_of(gql, PRODUCTS, filter={"search": search})
        assert error["extensions"]["code"] == "VALIDATION"
        assert complaint in error["message"]
    fine = connection_of(await gql.data(PRODUCTS, {"filter": {"search": "x" * 200}}))
    assert fine["totalCount"] == 0
