"""The order timeline: `Order.history`, read from the order_history projection, oldest first,
the same through both executors, and on `orderUpdated` always as long as the order's version
(its status and its timeline agree in every event pushed)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from devtools.graphql_client import CANCEL_ORDER, PAY_ORDER, SHIP_ORDER, GraphQLClient
from devtools.servers import ServerUnderTest
from devtools.ws_client import TRANSPORT_WS, subscriber
from tests.support.read_queries import settle

HISTORY = """query($id: ID!, $token: String) {
  order(id: $id, consistentWith: $token) {
    status version history { version event status at } } }"""
UPDATED = """subscription($id: ID!) {
  orderUpdated(id: $id) { status version ... on Order { history { version status } } } }"""


async def both_executors(server: ServerUnderTest, variables: dict[str, Any]) -> list[Any]:
    """The answer of the compiled path, then the reference executor's (a body with an
    `extensions` member goes to strawberry)."""
    answers = []
    async with httpx.AsyncClient(timeout=30) as http:
        for extra in ({}, {"extensions": {}}):
            body = {"query": HISTORY, "variables": variables, **extra}
            reply = await http.post(server.graphql_url, json=body)
            assert "errors" not in reply.json(), reply.json()
            answers.append(reply.json()["data"]["order"])
    return answers


async def test_each_event_of_an_order_is_an_entry_oldest_first_on_both_executors(
    server: ServerUnderTest, gql: GraphQLClient
) -> None:
    customer = await gql.customer()
    product = await gql.product(stock=10)
    shipped = await gql.order(customer, (product, 1))
    cancelled = await gql.order(customer, (product, 2))
    await gql.ok(PAY_ORDER, orderId=shipped["orderId"])
    last = await gql.ok(SHIP_ORDER, orderId=shipped["orderId"])
    gone = await gql.ok(CANCEL_ORDER, orderId=cancelled["orderId"], reason="too late")
    await settle(gql, last, gone)

    compiled, reference = await both_executors(
        server, {"id": shipped["orderId"], "token": last["consistencyToken"]}
    )
    assert compiled == reference
    assert [(e["version"], e["event"], e["status"]) for e in compiled["history"]] == [
        (1, "OrderPlaced", "PLACED"), (2, "OrderPaid", "PAID"), (3, "OrderShipped", "SHIPPED"),
    ]  # fmt: skip
    times = [datetime.fromisoformat(e["at"]) for e in compiled["history"]]
    assert times == sorted(times)

    compiled, reference = await both_executors(server, {"id": cancelled["orderId"]})
    assert compiled == reference
    assert [(e["event"], e["status"]) for e in compiled["history"]] == [
        ("OrderPlaced", "PLACED"), ("OrderCancelled", "CANCELLED"),
    ]  # fmt: skip
    assert compiled["history"][-1]["status"] == compiled["status"]


async def test_order_updated_carries_a_history_as_long_as_the_order(
    server: ServerUnderTest, gql: GraphQLClient
) -> None:
    customer = await gql.customer()
    product = await gql.product()
    order = await gql.order(customer, (product, 1))
    async with subscriber(server.ws_url, TRANSPORT_WS) as ws:
        await ws.subscribe(UPDATED, {"id": order["orderId"]})
        seen = [(await ws.data())["orderUpdated"]]
        await gql.ok(PAY_ORDER, orderId=order["orderId"])
        await gql.ok(SHIP_ORDER, orderId=order["orderId"])
        while seen[-1]["status"] != "SHIPPED":
            seen.append((await ws.data(timeout_s=30))["orderUpdated"])
    for update in seen:  # every state pushed is one the order had, timeline included
        assert [e["version"] for e in update["history"]] == list(range(1, update["version"] + 1))
        assert update["history"][-1]["status"] == update["status"]
    assert seen[-1]["history"] == [
        {"version": 1, "status": "PLACED"}, {"version": 2, "status": "PAID"},
        {"version": 3, "status": "SHIPPED"},
    ]  # fmt: skip
