"""What subscribers are promised beyond the first event: no update missed for good after a
Redis outage, never an older state after a newer one, the newest state for a consumer that
falls behind, and keep-alives that find clients who vanished."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any, cast
from uuid import UUID

import pytest
import redis.asyncio as redis_asyncio
from redis.asyncio.client import PubSub
from starlette.websockets import WebSocket
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from app.config.settings import Role, Settings
from app.events.streams import changes_channel
from app.graphql.context import Context
from app.projections.change_keys import order_key
from app.runtime.bootstrap import Api
from app.schema import schema
from app.security.principal import LOCAL_ADMIN
from devtools.graphql_client import PAY_ORDER, SHIP_ORDER, GraphQLClient
from devtools.servers import ServerUnderTest, running_server
from devtools.tcp_proxy import Outage, redis_behind_proxy
from devtools.ws_client import LEGACY_WS, PROTOCOLS, TRANSPORT_WS, Subscriber, subscriber
from tests.subscriptions.test_subscriptions import (
    ORDER_UPDATED,
    ORDERS_CHANGED,
    watch_count,
    watching,
)
from tests.support.pipeline_waits import caught_up


async def placed_order(gql: GraphQLClient) -> tuple[str, str]:
    """A new order's customer id and order id."""
    customer = await gql.customer()
    product = await gql.product()
    order = await gql.order(customer, (product, 1))
    return customer, order["orderId"]


@contextlib.asynccontextmanager
async def announcements(settings: Settings) -> AsyncIterator[PubSub]:
    """The projectors' announcements, heard on Redis directly (not through any proxy)."""
    assert settings.redis_url
    client = redis_asyncio.Redis.from_url(settings.redis_url)
    try:
        async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(changes_channel(settings.redis_prefix))
            yield pubsub
    finally:
        await client.aclose()


async def heard(pubsub: PubSub, key: str) -> None:
    """Return once an announcement names `key`."""
    async for message in pubsub.listen():
        if key in json.loads(message["data"])["keys"]:
            return


async def test_a_change_announced_while_the_feed_was_cut_reaches_subscribers_after_it(
    settings: Settings, server: ServerUnderTest, gql: GraphQLClient, process: Api
) -> None:
    customer, order_id = await placed_order(gql)
    assert settings.redis_url
    async with (
        redis_behind_proxy(settings.redis_url) as (proxy, proxied_redis),
        # The sockets' API hears announcements through the proxy; `server` projects.
        running_server(settings.model_copy(update={"redis_url": proxied_redis, "role": Role.QUERY}))
        as api,
        subscriber(api.ws_url, TRANSPORT_WS) as one_order,
        subscriber(api.ws_url, TRANSPORT_WS) as customers_orders,
        announcements(settings) as pubsub,
    ):  # fmt: skip
        await one_order.subscribe(ORDER_UPDATED, {"id": order_id})
        assert (await one_order.data())["orderUpdated"]["status"] == "PLACED"
        await customers_orders.subscribe(ORDERS_CHANGED, {"c": customer})
        await watching(api, 2)
        feed = cast(Api, api.app.state.api).services.changes

        await proxy.go_down(Outage.REFUSE)
        paid = await gql.ok(PAY_ORDER, orderId=order_id)
        await caught_up(process, paid["consistencyToken"])
        # Announced while the API's feed was cut: only the resync after it can tell.
        await asyncio.wait_for(heard(pubsub, str(order_key(UUID(order_id)))), 30)
        assert not feed.connected.is_set()
        await proxy.come_up()

        # The placement's own announcements may still arrive first on a busy machine (the
        # test does not wait for them): what matters is that PAID comes.
        updated = await next_with_status(one_order, "orderUpdated", "PAID")
        changed = await next_with_status(customers_orders, "ordersChanged", "PAID")
    assert updated["id"] == order_id
    assert changed["id"] == order_id


async def next_with_status(ws: Subscriber, field: str, status: str) -> dict[str, Any]:
    """The subscription's next event whose order has `status` (within 30 s each), after
    any with an earlier one."""
    while True:
        event: dict[str, Any] = (await ws.data(timeout_s=30))[field]
        if event["status"] == status:
            return event


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_changes_in_quick_succession_never_go_back_to_an_older_state(
    server: ServerUnderTest, gql: GraphQLClient, protocol: str
) -> None:
    _, order_id = await placed_order(gql)
    async with subscriber(server.ws_url, protocol) as ws:
        await ws.subscribe(ORDER_UPDATED, {"id": order_id})
        seen = [(await ws.data())["orderUpdated"]]
        await gql.ok(PAY_ORDER, orderId=order_id)  # two changes, the second straight after
        await gql.ok(SHIP_ORDER, orderId=order_id)
        while seen[-1]["status"] != "SHIPPED":
            seen.append((await ws.data(timeout_s=30))["orderUpdated"])
    versions = [event["version"] for event in seen]
    assert versions == sorted(set(versions))  # each emitted once, newer each time
    assert seen[0]["status"] == "PLACED"
    assert [e["status"] for e in seen] in (
        ["PLACED", "PAID", "SHIPPED"], ["PLACED", "SHIPPED"],
    )  # fmt: skip


async def test_a_consumer_that_falls_behind_gets_the_newest_state_not_a_backlog(
    server: ServerUnderTest, gql: GraphQLClient
) -> None:
    _, order_id = await placed_order(gql)
    api: Api = server.app.state.api
    context = Context(api.services, cast(WebSocket, None), cast(WebSocket, None), LOCAL_ADMIN)
    query = "subscription($id: ID!) { orderUpdated(id: $id) { status version } }"
    stream = cast(Any, await schema.subscribe(query, {"id": order_id}, context_value=context))
    try:
        first = (await anext(stream)).data["orderUpdated"]
        # The consumer takes nothing while the order changes twice...
        await gql.ok(PAY_ORDER, orderId=order_id)
        shipped = await gql.ok(SHIP_ORDER, orderId=order_id)
        await caught_up(api, shipped["consistencyToken"])
        # ...then gets the state as it is now, not the PAID state it missed.
        second = (await asyncio.wait_for(anext(stream), 30)).data["orderUpdated"]
    finally:
        await stream.aclose()
    assert first == {"status": "PLACED", "version": 1}
    assert second == {"status": "SHIPPED", "version": 3}


class SilentClient:
    """A WebSocket client that never answers the server's pings (a vanished network)."""

    def __init__(self, url: str, protocol: str) -> None:
        self.protocol = ClientProtocol(parse_uri(url), subprotocols=[protocol])  # type: ignore[list-item]
        self.url = parse_uri(url)
        self.pings = 0
        self.texts: list[dict[str, Any]] = []

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.url.host, self.url.port)
        self.protocol.send_request(self.protocol.connect())
        self.flush()
        while not any(isinstance(e, Response) for e in await self.receive()):
            pass

    def send(self, message: dict[str, Any]) -> None:
        self.protocol.send_text(json.dumps(message).encode())
        self.flush()

    def flush(self) -> None:
        # Only what the test sends goes out: pongs the protocol queued are sent with it.
        self.writer.write(b"".join(self.protocol.data_to_send()))

    async def receive(self) -> list[object]:
        data = await self.reader.read(65536)
        if not data:
            self.protocol.receive_eof()
        else:
            self.protocol.receive_data(data)
        events = self.protocol.events_received()
        for event in events:
            if isinstance(event, Frame) and event.opcode is Opcode.PING:
                self.pings += 1
            elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self.texts.append(json.loads(event.data))
        return events

    async def until_closed(self) -> None:
        while not self.reader.at_eof():
            await self.receive()
        self.writer.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_idle_socket_gets_pings_and_a_silent_client_is_let_go(
    settings: Settings, protocol: str
) -> None:
    quick = settings.model_copy(update={"ws_keepalive_s": 0.3})
    async with running_server(quick) as server:
        client = SilentClient(server.ws_url, protocol)
        await client.open()
        client.send({"type": "connection_init", "payload": {}})
        start = "subscribe" if protocol == TRANSPORT_WS else "start"
        client.send({"id": "1", "type": start, "payload": {"query": ORDERS_CHANGED}})
        await watching(server)
        await asyncio.wait_for(client.until_closed(), 10)
        feed = cast(Api, server.app.state.api).services.changes
        for _ in range(100):  # the subscription's end runs just after the close
            if watch_count(feed) == 0:
                break
            await asyncio.sleep(0.02)
    assert client.pings >= 1
    assert watch_count(feed) == 0
    types = [m["type"] for m in client.texts]
    assert types[0] == "connection_ack"
    if protocol == LEGACY_WS:
        assert "ka" in types  # graphql-ws's own keep-alive message as well
