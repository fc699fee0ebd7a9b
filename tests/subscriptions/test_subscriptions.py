"""Subscriptions over both WebSocket subprotocols: first events, updates, ends, errors, limits."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets

from app.config.settings import Role, Settings
from app.pipeline.change_feed import ChangeFeed
from app.projections.names import ProjectionName
from app.projections.registry import PROJECTIONS
from app.runtime.bootstrap import Api
from devtools.graphql_client import PAY_ORDER, SHIP_ORDER, GraphQLClient
from devtools.servers import ServerUnderTest, running_server
from devtools.ws_client import PROTOCOLS, subscriber

ORDER_FIELDS = "id status version customer { id } lines { sku quantity }"
CAUGHT_UP = (
    "subscription($t: String!, $ms: Int) { projectionsCaughtUp(token: $t, timeoutMs: $ms) "
    "{ caughtUp projections waitedMs } }"
)
ORDER_UPDATED = f"subscription($id: ID!) {{ orderUpdated(id: $id) {{ {ORDER_FIELDS} }} }}"
ORDERS_CHANGED = f"subscription($c: ID) {{ ordersChanged(customerId: $c) {{ {ORDER_FIELDS} }} }}"
STATUS = "subscription($ms: Int) { projectionStatus(intervalMs: $ms) { name state lagEvents } }"

pytestmark = pytest.mark.parametrize("protocol", PROTOCOLS)


def watch_count(feed: ChangeFeed) -> int:
    """The watches registered with the feed (a watch of several keys counts once a key)."""
    return sum(map(len, feed.by_projection.values())) + sum(map(len, feed.by_key.values()))


async def watching(server: ServerUnderTest, count: int = 1) -> None:
    """Wait until the server's subscriptions have registered `count` watches."""
    api: Api = server.app.state.api
    for _ in range(200):
        if watch_count(api.services.changes) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the subscription never started watching")


async def test_projections_caught_up_emits_once_then_completes(
    server: ServerUnderTest, gql: GraphQLClient, protocol: str
) -> None:
    customer = await gql.customer()
    product = await gql.product()
    order = await gql.order(customer, (product, 1))
    async with subscriber(server.ws_url, protocol) as ws:
        await ws.subscribe(CAUGHT_UP, {"t": order["consistencyToken"], "ms": 10_000})
        result = (await ws.data())["projectionsCaughtUp"]
        assert result["caughtUp"] is True
        assert set(result["projections"]) == {
            "order_view", "customer_summary", "product_catalogue", "daily_sales", "order_history",
        }  # fmt: skip
        assert (await ws.message())["type"] == "complete"


async def test_a_bad_token_or_timeout_is_an_error(server: ServerUnderTest, protocol: str) -> None:
    async with subscriber(server.ws_url, protocol) as ws:
        await ws.subscribe(CAUGHT_UP, {"t": "not-a-token"})
        bad_token = await ws.until_done()
        await ws.subscribe(CAUGHT_UP, {"t": "x", "ms": 600_000})
        bad_timeout = await ws.until_done()
    assert "not a consistency token" in str(bad_token)
    assert "timeoutMs must be between" in str(bad_timeout)
    assert "VALIDATION" in str(bad_token)


async def test_order_updated_emits_now_and_on_each_change(
    server: ServerUnderTest, gql: GraphQLClient, protocol: str
) -> None:
    customer = await gql.customer()
    product = await gql.product()
    order = await gql.order(customer, (product, 2))
    async with subscriber(server.ws_url, protocol) as ws:
        await ws.subscribe(ORDER_UPDATED, {"id": order["orderId"]})
        first = (await ws.data())["orderUpdated"]
        await gql.ok(PAY_ORDER, orderId=order["orderId"])
        paid = (await ws.data())["orderUpdated"]
        await gql.ok(SHIP_ORDER, orderId=order["orderId"])
        shipped = (await ws.data())["orderUpdated"]
    assert [(e["status"], e["version"]) for e in (first, paid, shipped)] == [
        ("PLACED", 1), ("PAID", 2), ("SHIPPED", 3),
    ]  # fmt: skip
    assert first["lines"] == [{"sku": "SKU-1", "quantity": 2}]


async def test_order_updated_refuses_a_malformed_id(server: ServerUnderTest, protocol: str) -> None:
    async with subscriber(server.ws_url, protocol) as ws:
        await ws.subscribe(ORDER_UPDATED, {"id": "nope"})
        messages = await ws.until_done()
    assert "id is not a valid id" in str(messages)


async def test_orders_changed_follows_one_customer(
    server: ServerUnderTest, gql: GraphQLClient, protocol: str
) -> None:
    mine = await gql.customer("mine@example.com")
    theirs = await gql.customer("theirs@example.com")
    product = await gql.product(stock=100)
    async with subscriber(server.ws_url, protocol) as ws:
        await ws.subscribe(ORDERS_CHANGED, {"c": mine})
        await watching(server)  # changes before the subscription starts are not its business
        await gql.order(theirs, (product, 1))
        placed = await gql.order(mine, (product, 1))
        first = (await ws.data())["ordersChanged"]
        await gql.ok(PAY_ORDER, orderId=placed["orderId"])
        second = (await ws.data())["ordersChanged"]
    assert (first["id"], first["status"], first["customer"]["id"]) == (
        placed["orderId"], "PLACED", mine,
    )  # fmt: skip
    assert (second["id"], second["status"]) == (placed["orderId"], "PAID")


async def test_projection_status_emits_every_interval(
    server: ServerUnderTest, protocol: str
) -> None:
    async with subscriber(server.ws_url, protocol) as ws:
        await ws.subscribe(STATUS, {"ms": 200})
        first = (await ws.data())["projectionStatus"]
        second = (await ws.data(timeout_s=5))["projectionStatus"]
        await ws.subscribe(STATUS, {"ms": 100})
        too_fast = await ws.message()
        while "intervalMs" not in str(too_fast):  # the first subscription still ticks
            too_fast = await ws.message()
    assert [s["name"] for s in first] == [s["name"] for s in second]
    assert len(first) == len(PROJECTIONS)
    assert "intervalMs must be between 200" in str(too_fast["payload"])


async def test_subscriptions_end_cleanly_when_the_client_leaves(
    server: ServerUnderTest, gql: GraphQLClient, protocol: str
) -> None:
    api: Api = server.app.state.api
    customer = await gql.customer()
    product = await gql.product()
    order = await gql.order(customer, (product, 1))
    tasks_before = serving_tasks()
    async with subscriber(server.ws_url, protocol) as ws:
        await ws.subscribe(ORDER_UPDATED, {"id": order["orderId"]})
        await ws.subscribe(ORDERS_CHANGED, {})
        await ws.data()
        await watching(server, 2)
    for _ in range(100):
        gc.collect()  # a generator abandoned mid-send is closed when collected
        if watch_count(api.services.changes) == 0 and serving_tasks() <= tasks_before:
            break
        await asyncio.sleep(0.05)
    assert watch_count(api.services.changes) == 0
    assert serving_tasks() - tasks_before == set()


def serving_tasks() -> set[asyncio.Task[Any]]:
    """This loop's tasks but the pipeline's partition consumers, which start and stop as
    their leases move (named `<projection>/<partition>`)."""
    projections = {projection.value for projection in ProjectionName}
    return {t for t in asyncio.all_tasks() if t.get_name().split("/")[0] not in projections}


async def test_the_cap_on_subscriptions_per_connection(settings: Settings, protocol: str) -> None:
    capped = settings.model_copy(update={"max_subscriptions_per_connection": 2})
    async with running_server(capped) as server, subscriber(server.ws_url, protocol) as ws:
        for _ in range(2):
            await ws.subscribe(STATUS, {"ms": 10_000})
            await ws.data()
        await ws.subscribe(STATUS, {"ms": 10_000})
        refused = await ws.message()
    assert refused["type"] == "error"
    assert "subscription limit reached" in str(refused["payload"]).lower()


async def test_cross_origin_sockets_need_the_allowlist(settings: Settings, protocol: str) -> None:
    allowed = settings.model_copy(update={"allowed_origins": ("https://shop.example",)})
    async with running_server(allowed) as server:
        with pytest.raises(websockets.InvalidStatus):
            async with subscriber(server.ws_url, protocol, {"Origin": "https://evil.example"}):
                pass
        async with subscriber(server.ws_url, protocol, {"Origin": "https://shop.example"}) as ws:
            await ws.subscribe(STATUS, {"ms": 10_000})
            assert (await ws.data())["projectionStatus"]


@pytest.fixture
async def split_processes(settings: Settings) -> AsyncIterator[tuple[GraphQLClient, str]]:
    """A command-role API for mutations and a query-role API for sockets; neither projects."""
    async with (
        running_server(settings.model_copy(update={"role": Role.COMMAND})) as commands,
        running_server(settings.model_copy(update={"role": Role.QUERY})) as queries,
        httpx.AsyncClient(timeout=30) as client,
    ):
        yield GraphQLClient(commands.graphql_url, client), queries.ws_url


async def test_an_update_projected_by_another_process_reaches_the_subscriber(
    split_processes: tuple[GraphQLClient, str],
    shop_bin: object,
    shop_env: dict[str, str],
    tmp_path: object,
    protocol: str,
) -> None:
    from pathlib import Path

    from devtools.processes import ShopProcesses

    commands, ws_url = split_processes
    workers = ShopProcesses(shop_env, Path(str(tmp_path)))
    workers.start_worker()  # the only projector: a separate `shop worker` process
    try:
        customer = await commands.customer()
        product = await commands.product()
        order = await commands.order(customer, (product, 1))
        async with subscriber(ws_url, protocol) as ws:
            await ws.subscribe(ORDER_UPDATED, {"id": order["orderId"]})
            first = (await ws.data(timeout_s=30))["orderUpdated"]
            await commands.ok(PAY_ORDER, orderId=order["orderId"])
            paid = (await ws.data(timeout_s=30))["orderUpdated"]
    finally:
        workers.stop()
    assert (first["status"], paid["status"]) == ("PLACED", "PAID")
