"""The compiled read path answers exactly as the reference executor (strawberry) does.

Differential: every query shape below runs through both executors for several callers, on
data made by real mutations. Either the compiled path answers and its data equal the
reference's, or the reference ends in an error and the compiled path hands the request over
(`Fallback`): it never answers a request the reference refuses, and never refuses one the
reference answers.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response

from app.config.settings import Settings
from app.graphql.context import Context, Services
from app.projections.registry import PROJECTIONS
from app.queries.compiled import Compiler, Fallback
from app.schema import create_compiler, create_schema
from app.security.principal import LOCAL_ADMIN, Principal, UserRole
from devtools.graphql_client import CANCEL_ORDER, PAY_ORDER, SHIP_ORDER, GraphQLClient
from devtools.servers import ServerUnderTest, running_server
from tests.support.read_queries import (
    CUSTOMER,
    CUSTOMER_ORDERS,
    CUSTOMERS,
    ORDER,
    ORDER_FIELDS,
    ORDERS,
    PRODUCT,
    PRODUCTS,
    SALES_REPORT,
    settle,
    shown_customer,
    shown_product,
)

_SCHEMA = create_schema()
_COMPILER: Compiler = create_compiler(_SCHEMA)


def _customer(customer_id: str) -> Principal:
    return Principal(UserRole.CUSTOMER, customer_id, uuid.UUID(customer_id))


def _context(services: Services, principal: Principal | None) -> Context:
    request = Request({"type": "http", "method": "POST", "headers": [], "path": "/graphql"})
    return Context(services, request, Response(), principal)


async def _reference(
    services: Services, query: str, variables: dict[str, Any], principal: Principal | None
) -> tuple[Any, list[Any]]:
    result = await _SCHEMA.execute(
        query, variable_values=variables, context_value=_context(services, principal)
    )
    data = json.loads(json.dumps(result.data)) if result.data is not None else None
    return data, list(result.errors or [])


async def _compiled(
    services: Services, query: str, variables: dict[str, Any], principal: Principal | None
) -> Any:
    plan = _COMPILER.plan(query, None)
    assert plan is not None, f"not compiled:\n{query}"
    text = await plan.data(services, lambda: _context(services, principal), variables, principal)
    return json.loads(text)


async def _differ(
    services: Services, query: str, variables: dict[str, Any], principal: Principal | None
) -> str | None:
    """None when both executors agree; else what differs."""
    expected, errors = await _reference(services, query, variables, principal)
    try:
        got = await _compiled(services, query, variables, principal)
    except Fallback:
        return None if errors else f"fell back, but the reference answered {expected}"
    if errors:
        return f"answered {got}, but the reference failed: {[e.message for e in errors]}"
    if got != expected:
        return f"compiled {got}\n!= reference {expected}"
    return None


async def _seed(gql: GraphQLClient) -> dict[str, Any]:
    ada = await shown_customer(gql, email="ada@example.com", name="Ada")
    bob = await shown_customer(gql, email="bob@example.com", name='Bób "the builder" \\ Ünïcode')
    cy = await shown_customer(gql, email="cy@example.com", name="cy")
    pen = await shown_product(gql, sku="PEN-1", name="Pen", price_cents=150, stock=100)
    ink = await shown_product(gql, sku="INK_50", name="Ink 50%", price_cents=400, stock=100)
    mug = await shown_product(gql, sku="MUG", name="Mügé ☕", price_cents=1200, stock=1)
    await shown_product(gql, sku="EMPTY", name="empty", price_cents=5, stock=0)
    orders = [
        await gql.order(ada, (pen, 2)),
        await gql.order(ada, (ink, 1), (pen, 1)),
        await gql.order(bob, (mug, 1)),
        await gql.order(ada, (pen, 5)),
        await gql.order(cy, (ink, 3)),
    ]
    await gql.ok(PAY_ORDER, orderId=orders[0]["orderId"])
    await gql.ok(SHIP_ORDER, orderId=orders[0]["orderId"])
    await gql.ok(PAY_ORDER, orderId=orders[1]["orderId"])
    last = await gql.ok(CANCEL_ORDER, orderId=orders[3]["orderId"], reason="änderung ✓")
    await settle(gql, last, *orders)
    return {
        "customers": (ada, bob, cy),
        "products": (pen, ink, mug),
        "orders": [o["orderId"] for o in orders],
        "token": last["consistencyToken"],
    }


def _services(server: ServerUnderTest) -> Services:
    services: Services = server.app.state.api.services
    return services


_TODAY = datetime.now(UTC).date()
_SHAPES_OF_ORDER = f"""query($id: ID!) {{
  __typename
  a: order(id: $id) {{ __typename ...o lines {{ __typename sku }}
    history {{ __typename version event status at }} }}
  b: order(id: $id) @skip(if: true) {{ id }}
  c: order(id: $id) @include(if: true) {{ ... on Order {{ id customer {{ __typename id }} }} }}
}}
fragment o on Order {{ {ORDER_FIELDS} }}"""
_NESTED = f"""query($first: Int, $inner: Int) {{
  customers(first: $first, orderBy: NAME) {{
    __typename totalCount pageInfo {{ __typename hasNextPage endCursor }}
    edges {{ __typename cursor node {{ id name
      orders(first: $inner) {{ totalCount edges {{ cursor node {{ {ORDER_FIELDS}
        history {{ at status }} }} }}
        pageInfo {{ hasNextPage endCursor }} }} }} }} }} }}"""
_SEVERAL = """query($c: ID!, $p: ID!) {
  product(id: $p) { id name }
  customer(id: $c) { name orders(first: 1) { edges { node { id } } } }
  products(first: 2, orderBy: PRICE_DESC) { edges { node { id priceCents } } }
}"""


def _cases(seed: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    ada, bob, cy = seed["customers"]
    pen, ink, mug = seed["products"]
    fourth = seed["orders"][3]
    week = {"from": str(_TODAY - timedelta(days=6)), "to": str(_TODAY + timedelta(days=1))}
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    cases: list[tuple[str, dict[str, Any]]] = [
        *((ORDER, {"id": order}) for order in seed["orders"]),
        (ORDER, {"id": str(uuid.uuid4())}),
        (ORDER, {"id": "not-an-id"}),
        (ORDER, {"id": fourth, "token": seed["token"]}),
        (ORDER, {"id": fourth, "token": "garbage"}),
        *((_SHAPES_OF_ORDER, {"id": order}) for order in seed["orders"]),
        *((CUSTOMER, {"id": customer}) for customer in seed["customers"]),
        (CUSTOMER, {"id": "nope"}),
        (CUSTOMER_ORDERS, {"id": ada, "first": 2}),
        (CUSTOMER_ORDERS, {"id": ada, "first": 0}),
        (CUSTOMER_ORDERS, {"id": bob}),
        *((PRODUCT, {"id": product}) for product in seed["products"]),
        (PRODUCT, {"id": str(uuid.uuid4())}),
        (ORDERS, {}),
        (ORDERS, {"first": 2}),
        (ORDERS, {"first": 101}),
        (ORDERS, {"after": "bad cursor"}),
        (ORDERS, {"filter": {"customerId": ada}}),
        (ORDERS, {"filter": {"customerId": bob}, "first": 1}),
        (ORDERS, {"filter": {"customerId": "nope"}}),
        (ORDERS, {"filter": {"status": ["PAID", "SHIPPED", "PAID"]}}),
        (ORDERS, {"filter": {"status": []}}),
        (ORDERS, {"filter": {"placedFrom": since, "minTotalCents": 400}}),
        (ORDERS, {"filter": {"placedTo": since}}),
        (ORDERS, {"filter": {"placedFrom": "2026-01-01T00:00:00"}}),
        *((CUSTOMERS, {"orderBy": order}) for order in ("NEWEST", "TOTAL_SPENT_DESC", "NAME")),
        (CUSTOMERS, {"first": 1, "orderBy": None}),
        *(
            (PRODUCTS, {"orderBy": order})
            for order in ("NAME", "PRICE_ASC", "PRICE_DESC", "UNITS_SOLD_DESC")
        ),
        (PRODUCTS, {"filter": {"search": "50%"}}),
        (PRODUCTS, {"filter": {"search": "_"}}),
        (PRODUCTS, {"filter": {"search": "MÜG"}}),
        (PRODUCTS, {"filter": {"search": "", "inStock": True}}),
        (PRODUCTS, {"filter": {"inStock": False}}),
        (PRODUCTS, {"filter": {"search": "x" * 201}}),
        (SALES_REPORT, week),
        (SALES_REPORT, {"from": str(_TODAY), "to": str(_TODAY - timedelta(days=1))}),
        (SALES_REPORT, {**week, "token": seed["token"]}),
        (_NESTED, {"first": 2, "inner": 1}),
        (_NESTED, {"first": 20, "inner": 20}),
        (_SEVERAL, {"c": cy, "p": mug}),
        (_SEVERAL, {"c": ada, "p": ink}),
        (_SEVERAL, {"c": bob, "p": pen}),
    ]
    return cases


async def test_every_shape_answers_as_the_reference_does_for_every_caller(
    server: ServerUnderTest, gql: GraphQLClient
) -> None:
    seed = await _seed(gql)
    services = _services(server)
    ada, bob, _ = seed["customers"]
    callers = {"admin": LOCAL_ADMIN, "ada": _customer(ada), "bob": _customer(bob), "anon": None}
    differences = []
    for query, variables in _cases(seed):
        for name, principal in callers.items():
            if (difference := await _differ(services, query, variables, principal)) is not None:
                differences.append(f"{name} {variables}\n{query}\n{difference}")
    assert not differences, "\n\n".join(differences)


async def test_pages_and_cursors_are_the_same_on_both_executors(
    server: ServerUnderTest, gql: GraphQLClient
) -> None:
    seed = await _seed(gql)
    services = _services(server)
    ada = seed["customers"][0]
    listings = [
        *((CUSTOMERS, {"orderBy": o}) for o in ("NEWEST", "TOTAL_SPENT_DESC", "NAME")),
        *(
            (PRODUCTS, {"orderBy": o})
            for o in ("NAME", "PRICE_ASC", "PRICE_DESC", "UNITS_SOLD_DESC")
        ),
        (ORDERS, {}),
        (CUSTOMER_ORDERS, {"id": ada}),
    ]
    for query, variables in listings:
        after, pages = None, 0
        while True:
            page = {**variables, "first": 2, "after": after}
            assert await _differ(services, query, page, LOCAL_ADMIN) is None, (query, page)
            data = await _compiled(services, query, page, LOCAL_ADMIN)
            connection = next(iter(data.values()))
            connection = connection.get("orders", connection)
            pages += 1
            if not connection["pageInfo"]["hasNextPage"]:
                break
            after = connection["pageInfo"]["endCursor"]
        assert pages >= 2, f"{query} {variables}: the data should need more than one page"


async def test_over_http_covered_queries_are_compiled_and_the_rest_go_to_the_reference(
    settings: Settings,
) -> None:
    # Compiled whichever executor the suite runs on (SHOP_TEST_EXECUTOR).
    async with (
        running_server(settings.model_copy(update={"compiled_queries": True})) as server,
        httpx.AsyncClient(timeout=60) as client,
    ):
        await _answered_over_http(server, GraphQLClient(server.graphql_url, client))


async def _answered_over_http(server: ServerUnderTest, gql: GraphQLClient) -> None:
    seed = await _seed(gql)
    order = seed["orders"][1]
    metrics = server.app.state.api.metrics

    def answered(executor: str) -> float:
        value = metrics.get_sample_value("shop_queries_answered_total", {"executor": executor})
        return value or 0.0

    before = answered("compiled"), answered("reference")
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            server.graphql_url, json={"query": ORDER, "variables": {"id": order}}
        )
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.headers["x-request-id"]
        expected, _ = await _reference(_services(server), ORDER, {"id": order}, LOCAL_ADMIN)
        assert response.json() == {"data": expected}
        assert (answered("compiled"), answered("reference")) == (before[0] + 1, before[1])

        refused = await client.post(
            server.graphql_url, json={"query": ORDERS, "variables": {"first": 0}}
        )
        assert refused.status_code == 200
        assert refused.json()["data"] is None
        assert refused.json()["errors"][0]["extensions"]["code"] == "VALIDATION"
        assert (answered("compiled"), answered("reference")) == (before[0] + 1, before[1] + 1)

        status = {"query": "{ projections { name } }"}
        projections = await client.post(server.graphql_url, json=status)
        assert len(projections.json()["data"]["projections"]) == len(PROJECTIONS)
        assert answered("reference") == before[1] + 2
