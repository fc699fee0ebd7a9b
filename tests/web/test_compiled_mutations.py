"""The compiled mutation path (app/mutations/compiled.py) answers as strawberry does.

Each request goes over HTTP to a served app; the same request with an `extensions` member
goes to the reference executor (the compiled path takes only plain requests), so both
answer the same operations on the same data. /metrics' `shop_queries_answered` says who
answered. The served app has the compiled path on whatever SHOP_TEST_EXECUTOR says.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from app.adapters.postgres import libpq_url
from app.config.settings import Settings
from devtools.graphql_client import MUTATIONS, GraphQLClient
from devtools.servers import ServerUnderTest, running_server


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[ServerUnderTest]:
    async with running_server(settings.model_copy(update={"compiled_queries": True})) as server:
        yield server


class _Http:
    def __init__(self, server: ServerUnderTest, client: httpx.AsyncClient) -> None:
        self.server, self.client = server, client

    async def post(
        self, query: str, variables: dict[str, Any], *, reference: bool = False
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"query": query, "variables": variables}
        if reference:
            body["extensions"] = {}
        response = await self.client.post(self.server.graphql_url, json=body)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def answered(self) -> tuple[float, float]:
        metrics = self.server.app.state.api.metrics

        def count(executor: str) -> float:
            labels = {"executor": executor}
            return metrics.get_sample_value("shop_queries_answered_total", labels) or 0.0

        return count("compiled"), count("reference")

    async def written(self) -> tuple[int, int, int]:
        """Rows in the write store's orders, products and outbox (on a connection of its own:
        the app's may have been cut)."""
        connection = await asyncpg.connect(
            libpq_url(self.server.app.state.api.stores.settings.database_url)
        )
        try:
            row = await connection.fetchrow(
                "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM products),"
                " (SELECT count(*) FROM outbox)"
            )
        finally:
            await connection.close()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])


_VARYING = frozenset({"orderId", "customerId", "productId", "consistencyToken", "token"})


def _shape(payload: Any) -> Any:
    """A response with what differs between two runs of a command (ids, tokens) blanked."""
    if isinstance(payload, dict):
        return {k: "<varies>" if k in _VARYING and v else _shape(v) for k, v in payload.items()}
    if isinstance(payload, list):
        return [_shape(value) for value in payload]
    return payload


async def _run(http: _Http, gql: GraphQLClient, *, reference: bool) -> list[Any]:
    """Every mutation, accepted and refused, on data of its own; the answers."""
    run = uuid.uuid4().hex[:8]
    customer = await gql.customer(email=f"{run}@example.com")
    stocked, priced = [await gql.product(sku=f"{run}-{n}", stock=50) for n in range(2)]
    line = {"productId": stocked, "quantity": 1}
    orders = [
        (await gql.ok(MUTATIONS["placeOrder"], customerId=customer, lines=[line]))["orderId"]
        for _ in range(2)
    ]
    inputs = [
        ("registerCustomer", {"email": f"new-{run}@example.com", "name": "Bo"}),
        ("registerCustomer", {"email": f"new-{run}@example.com", "name": "Bo"}),
        ("createProduct", {"sku": f"{run}-new", "name": "n", "priceCents": 5, "stock": 1}),
        ("createProduct", {"sku": f"{run}-0", "name": "n", "priceCents": 5, "stock": 1}),
        ("changeProductPrice", {"productId": priced, "priceCents": 700}),
        ("changeProductPrice", {"productId": priced, "priceCents": 7, "expectedVersion": 1}),
        ("restockProduct", {"productId": priced, "quantity": 5}),
        ("restockProduct", {"productId": str(uuid.uuid4()), "quantity": 5}),
        ("placeOrder", {"customerId": customer,
                        "lines": [{"productId": priced, "quantity": 999}]}),
        ("placeOrder", {"customerId": customer, "lines": []}),
        ("payOrder", {"orderId": orders[0]}),
        ("payOrder", {"orderId": orders[0]}),
        ("shipOrder", {"orderId": orders[0], "expectedVersion": 2}),
        ("cancelOrder", {"orderId": orders[1], "reason": "changed my mind"}),
        ("cancelOrder", {"orderId": "not an id"}),
    ]  # fmt: skip
    answers = [
        await http.post(MUTATIONS[name], {"input": given}, reference=reference)
        for name, given in inputs
    ]
    return json.loads(json.dumps(answers).replace(run, "<run>"))  # skus are in messages


async def test_every_mutation_is_answered_compiled_as_the_reference_answers(
    server: ServerUnderTest, gql: GraphQLClient
) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        http = _Http(server, client)
        before = http.answered()
        ours = await _run(http, gql, reference=False)
        middle = http.answered()
        theirs = await _run(http, gql, reference=True)
        after = http.answered()

    assert [_shape(answer) for answer in ours] == [_shape(answer) for answer in theirs]
    codes = [
        error["code"]
        for answer in ours
        for payload in answer["data"].values()
        for error in payload["userErrors"]
    ]
    assert codes == [
        "ALREADY_EXISTS", "ALREADY_EXISTS", "VERSION_CONFLICT", "NOT_FOUND",
        "INSUFFICIENT_STOCK", "VALIDATION", "INVALID_STATE", "NOT_FOUND",
    ]  # fmt: skip
    # The set-up's own mutations (gql) go compiled too: count only the runs' fifteen each.
    assert middle[0] - before[0] >= len(ours)
    assert middle[1] == before[1]
    assert after[1] - middle[1] == len(theirs)


async def test_aliases_fragments_and_typename_are_answered_compiled(
    server: ServerUnderTest, gql: GraphQLClient
) -> None:
    document = """
    mutation Place($input: PlaceOrderInput!) {
      kind: __typename
      placed: placeOrder(input: $input) {
        ...Ids
        errors: userErrors { c: code }
        __typename
      }
    }
    fragment Ids on OrderPayload { orderId version token: consistencyToken }
    """
    async with httpx.AsyncClient(timeout=30) as client:
        http = _Http(server, client)
        customer = await gql.customer()
        product = await gql.product(stock=5)
        before = http.answered()
        variables = {"input": {"customerId": customer,
                               "lines": [{"productId": product, "quantity": 2}]}}  # fmt: skip

        ours = await http.post(document, variables)
        theirs = await http.post(document, variables, reference=True)

        assert http.answered() == (before[0] + 1, before[1] + 1)
        assert list(ours["data"]) == ["kind", "placed"]
        assert list(ours["data"]["placed"]) == [
            "orderId", "version", "token", "errors", "__typename",
        ]  # fmt: skip
        assert _shape(ours) == _shape(theirs)
        assert ours["data"]["placed"]["version"] == 1
        assert ours["data"]["placed"]["__typename"] == "OrderPayload"
        assert ours["data"]["kind"] == "Mutation"
        assert ours["data"]["placed"]["orderId"] != theirs["data"]["placed"]["orderId"]


async def test_what_the_compiled_path_leaves_to_strawberry_runs_once(
    server: ServerUnderTest, gql: GraphQLClient
) -> None:
    """The payload's read model (it waits for the projection and reads the read store), two
    mutation fields in one document, a variable a scalar refuses: strawberry answers, and
    each command runs once, or, refused, writes nothing."""
    async with httpx.AsyncClient(timeout=30) as client:
        http = _Http(server, client)
        customer = await gql.customer()
        product = await gql.product(stock=50)
        line = {"customerId": customer, "lines": [{"productId": product, "quantity": 1}]}
        before, written = http.answered(), await http.written()

        with_order = await http.post(
            "mutation($input: PlaceOrderInput!) "
            "{ placeOrder(input: $input) { orderId order { id status } } }",
            {"input": line},
        )
        order = with_order["data"]["placeOrder"]
        assert order["order"] == {"id": order["orderId"], "status": "PLACED"}

        twice = await http.post(
            "mutation($input: PlaceOrderInput!) { a: placeOrder(input: $input) { orderId } "
            "b: placeOrder(input: $input) { orderId } }",
            {"input": line},
        )
        assert twice["data"]["a"]["orderId"] != twice["data"]["b"]["orderId"]

        refused = await http.post(MUTATIONS["placeOrder"], {"input": {"customerId": customer}})
        assert refused["data"] is None
        assert "lines" in refused["errors"][0]["message"]

        assert http.answered() == (before[0], before[1] + 3)
        orders, products, events = await http.written()
        assert (orders, products, events) == (written[0] + 3, written[1], written[2] + 3)


async def test_a_command_the_store_fails_is_answered_once_with_the_reference_error(
    server: ServerUnderTest, gql: GraphQLClient
) -> None:
    """Once its command is sent, a compiled mutation is not handed to strawberry (which
    would run it again): an error is worded here as strawberry words it."""
    async with httpx.AsyncClient(timeout=30) as client:
        http = _Http(server, client)
        customer = await gql.customer()
        product = await gql.product(stock=50)
        line = {"customerId": customer, "lines": [{"productId": product, "quantity": 1}]}
        written = await http.written()
        url = libpq_url(server.app.state.api.stores.settings.database_url)
        probe = await asyncpg.connect(url)
        database = await probe.fetchval("SELECT current_database()")
        await probe.close()
        admin = await asyncpg.connect(url, database="postgres")
        try:
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            answers = []
            for reference in (False, True):
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                    database,
                )
                before = http.answered()
                answers.append(
                    await http.post(MUTATIONS["placeOrder"], {"input": line}, reference=reference)
                )
                assert http.answered() == (
                    (before[0] + 1, before[1]) if not reference else (before[0], before[1] + 1)
                )
        finally:
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
            await admin.close()

        ours, theirs = answers
        assert ours["data"] is None
        (error,) = ours["errors"]
        assert error["path"] == ["placeOrder"]
        assert error["locations"] == theirs["errors"][0]["locations"]
        assert error["extensions"]["code"] == theirs["errors"][0]["extensions"]["code"]
        assert error["extensions"]["code"] in ("UNAVAILABLE", "INTERNAL")
        assert error["extensions"]["requestId"] in error["message"]
        assert set(error) == set(theirs["errors"][0])
        assert {k: v for k, v in theirs.items() if k != "errors"} == {"data": None}
        assert await http.written() == written
