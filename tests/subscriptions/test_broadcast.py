"""Shared subscriptions: subscribers of one document, variables and audience share each
result, on both protocols, and each still gets only what it may see, in order, newest first
when it falls behind."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any, cast

import httpx
import pytest
from pydantic import SecretStr
from starlette.websockets import WebSocket

from app.config.settings import Settings
from app.graphql.context import Context
from app.runtime.bootstrap import Api
from app.schema import schema
from app.security.principal import LOCAL_ADMIN, UserRole
from app.security.tokens import mint_token
from app.subscriptions.broadcast import Broadcasts, Frame, SharedResult
from app.web.asgi import ShopGraphQL
from devtools.graphql_client import PAY_ORDER, SHIP_ORDER, GraphQLClient
from devtools.servers import ServerUnderTest, running_server
from devtools.ws_client import LEGACY_WS, PROTOCOLS, TRANSPORT_WS, Subscriber, subscriber
from tests.security.test_websocket_sessions import close_code
from tests.subscriptions.test_subscription_delivery import placed_order
from tests.subscriptions.test_subscriptions import ORDER_UPDATED, watch_count

SECRET = "test-secret-of-at-least-32-bytes-long"


def broadcasts_of(server: ServerUnderTest) -> Broadcasts:
    """The server's broadcast groups (its GraphQL view's)."""
    route = next(r for r in server.app.routes if getattr(r, "path", None) == "/graphql")
    return cast(ShopGraphQL, route.app).broadcasts  # type: ignore[attr-defined]


async def raw_message(ws: Subscriber, timeout_s: float = 15) -> str:
    """The next message's text as sent, keep-alives skipped."""
    while True:
        text = await asyncio.wait_for(ws.socket.recv(), timeout_s)
        assert isinstance(text, str)
        if json.loads(text)["type"] not in ("ka", "ping", "pong"):
            return text


async def test_subscribers_on_both_protocols_share_one_group_and_get_identical_payloads_in_order(
    server: ServerUnderTest, gql: GraphQLClient
) -> None:
    _, order_id = await placed_order(gql)
    async with AsyncExitStack() as stack:
        sockets = [
            await stack.enter_async_context(subscriber(server.ws_url, protocol))
            for protocol in PROTOCOLS * 4
        ]
        for ws in sockets:
            await ws.subscribe(ORDER_UPDATED, {"id": order_id})
        seen = [[await raw_message(ws)] for ws in sockets]
        assert len(broadcasts_of(server).groups) == 1
        await gql.ok(PAY_ORDER, orderId=order_id)
        await gql.ok(SHIP_ORDER, orderId=order_id)
        for ws, texts in zip(sockets, seen, strict=True):
            while '"status":"SHIPPED"' not in texts[-1]:
                texts.append(await raw_message(ws))
    payloads: defaultdict[int, set[str]] = defaultdict(set)
    for ws, texts in zip(sockets, seen, strict=True):
        messages = [json.loads(text) for text in texts]
        # Compact JSON, keys in strawberry's order: the bytes strawberry itself would send.
        assert texts == [json.dumps(m, separators=(",", ":")) for m in messages]
        kind = "next" if ws.protocol == TRANSPORT_WS else "data"
        assert {(m["id"], m["type"]) for m in messages} == {("1", kind)}
        versions = [m["payload"]["data"]["orderUpdated"]["version"] for m in messages]
        assert versions == sorted(set(versions))  # each once, never an older after a newer
        assert (versions[0], versions[-1]) == (1, 3)
        for version, message in zip(versions, messages, strict=True):
            payloads[version].add(json.dumps(message["payload"]))
    assert all(len(same) == 1 for same in payloads.values())


async def test_a_late_subscriber_starts_from_the_state_as_it_is_now(
    server: ServerUnderTest, gql: GraphQLClient
) -> None:
    _, order_id = await placed_order(gql)
    async with subscriber(server.ws_url, TRANSPORT_WS) as early:
        await early.subscribe(ORDER_UPDATED, {"id": order_id})
        assert (await early.data())["orderUpdated"]["status"] == "PLACED"
        await gql.ok(PAY_ORDER, orderId=order_id)
        assert (await early.data())["orderUpdated"]["status"] == "PAID"
        async with subscriber(server.ws_url, LEGACY_WS) as late:
            await late.subscribe(ORDER_UPDATED, {"id": order_id})
            assert (await late.data())["orderUpdated"]["status"] == "PAID"
            assert len(broadcasts_of(server).groups) == 1


async def test_a_group_ends_with_its_last_member(
    server: ServerUnderTest, gql: GraphQLClient
) -> None:
    _, order_id = await placed_order(gql)
    api: Api = server.app.state.api
    async with subscriber(server.ws_url, TRANSPORT_WS) as one:
        await one.subscribe(ORDER_UPDATED, {"id": order_id})
        async with subscriber(server.ws_url, LEGACY_WS) as two:
            await two.subscribe(ORDER_UPDATED, {"id": order_id})
            await one.data()
            await two.data()
        await gql.ok(PAY_ORDER, orderId=order_id)  # the one left still hears of changes
        assert (await one.data())["orderUpdated"]["status"] == "PAID"
        assert len(broadcasts_of(server).groups) == 1
    for _ in range(100):
        if not broadcasts_of(server).groups and watch_count(api.services.changes) == 0:
            break
        await asyncio.sleep(0.05)
    assert broadcasts_of(server).groups == {}
    assert watch_count(api.services.changes) == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_error_reaches_every_subscriber_of_the_group_and_ends_it(
    server: ServerUnderTest, gql: GraphQLClient, protocol: str
) -> None:
    _, order_id = await placed_order(gql)
    bad_field = "subscription($id: ID!) { orderUpdated(id: $id) { id nope } }"
    async with (
        subscriber(server.ws_url, protocol) as one,
        subscriber(server.ws_url, protocol) as two,
    ):
        await one.subscribe(bad_field, {"id": order_id})
        await two.subscribe(bad_field, {"id": order_id})
        refusals = [await one.until_done(), await two.until_done()]
        # Subscribed again after the error: a new group, and the same answer.
        await one.subscribe(bad_field, {"id": order_id})
        refusals.append(await one.until_done())
    for messages in refusals:
        assert [m["type"] for m in messages] == ["error"]
        assert "Cannot query field 'nope'" in json.dumps(messages[0]["payload"])
    assert broadcasts_of(server).groups == {}


@pytest.fixture
async def secured_server(settings: Settings) -> AsyncIterator[ServerUnderTest]:
    secured = settings.model_copy(update={"jwt_secret": SecretStr(SECRET)})
    async with running_server(secured) as server:
        yield server


def credentials(role: UserRole, subject: str = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, role, subject, 3600)}"}


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_subscriber_who_may_not_see_the_order_gets_nothing_while_others_do(
    secured_server: ServerUnderTest, protocol: str
) -> None:
    url = secured_server.ws_url
    async with httpx.AsyncClient(timeout=60, headers=credentials(UserRole.ADMIN)) as http:
        admin = GraphQLClient(secured_server.graphql_url, http)
        ada_id, order_id = await placed_order(admin)
        bob_id = await admin.customer("bob@example.com", "Bob")
        async with (
            subscriber(url, protocol, init_payload=credentials(UserRole.CUSTOMER, bob_id)) as bob,
            subscriber(url, protocol, init_payload=credentials(UserRole.CUSTOMER, ada_id)) as ada,
            subscriber(url, protocol, init_payload=credentials(UserRole.ADMIN)) as boss,
        ):
            for ws in (bob, ada, boss):
                await ws.subscribe(ORDER_UPDATED, {"id": order_id})
            for ws in (ada, boss):
                assert (await ws.data())["orderUpdated"]["status"] == "PLACED"
            await admin.ok(PAY_ORDER, orderId=order_id)
            for ws in (ada, boss):
                assert (await ws.data())["orderUpdated"]["status"] == "PAID"
            # One group per audience: Bob's never emits, whatever the others were sent.
            assert len(broadcasts_of(secured_server).groups) == 3
            with pytest.raises(TimeoutError):
                await bob.message(timeout_s=1)


async def test_a_member_that_falls_behind_gets_the_newest_state_without_holding_up_the_others(
    server: ServerUnderTest, gql: GraphQLClient
) -> None:
    _, order_id = await placed_order(gql)
    api: Api = server.app.state.api
    context = Context(api.services, cast(WebSocket, None), cast(WebSocket, None), LOCAL_ADMIN)
    broadcasts = Broadcasts(schema, lambda data: json.dumps(data, separators=(",", ":")))
    query = "subscription($id: ID!) { orderUpdated(id: $id) { status version } }"
    keeping_up = broadcasts.subscribe(query, {"id": order_id}, None, context)
    behind = broadcasts.subscribe(query, {"id": order_id}, None, context)
    assert keeping_up is not None
    assert behind is not None

    async def state(frames: AsyncIterator[Frame], timeout_s: float = 30) -> dict[str, Any]:
        frame = await asyncio.wait_for(anext(frames), timeout_s)
        assert isinstance(frame, SharedResult)
        return cast(dict[str, Any], json.loads(frame.payload)["data"]["orderUpdated"])

    try:
        assert await state(keeping_up) == {"status": "PLACED", "version": 1}
        assert await state(behind) == {"status": "PLACED", "version": 1}
        # `behind` takes nothing while the order changes twice...
        await gql.ok(PAY_ORDER, orderId=order_id)
        assert await state(keeping_up) == {"status": "PAID", "version": 2}
        await gql.ok(SHIP_ORDER, orderId=order_id)
        assert await state(keeping_up) == {"status": "SHIPPED", "version": 3}
        # ...then gets the state as it is now, once, not the one it missed.
        assert await state(behind) == {"status": "SHIPPED", "version": 3}
        with pytest.raises(TimeoutError):
            await state(behind, timeout_s=0.5)
    finally:
        await keeping_up.aclose()
        await behind.aclose()
    for _ in range(100):
        if not broadcasts.groups and watch_count(api.services.changes) == 0:
            break
        await asyncio.sleep(0.02)
    assert broadcasts.groups == {}
    assert watch_count(api.services.changes) == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_the_group_outlives_the_socket_that_started_it_when_its_token_expires(
    secured_server: ServerUnderTest, protocol: str
) -> None:
    url = secured_server.ws_url
    expiring = {"Authorization": f"Bearer {mint_token(SECRET, UserRole.ADMIN, 'early', 3)}"}
    async with httpx.AsyncClient(timeout=60, headers=credentials(UserRole.ADMIN)) as http:
        admin = GraphQLClient(secured_server.graphql_url, http)
        _, order_id = await placed_order(admin)
        async with subscriber(url, protocol, init_payload=expiring) as first:
            await first.subscribe(ORDER_UPDATED, {"id": order_id})
            await first.data()
            async with subscriber(
                url, protocol, init_payload=credentials(UserRole.ADMIN)
            ) as second:
                await second.subscribe(ORDER_UPDATED, {"id": order_id})
                await second.data()
                assert len(broadcasts_of(secured_server).groups) == 1
                assert await close_code(first.socket, within_s=10) == 4403
                await admin.ok(PAY_ORDER, orderId=order_id)
                assert (await second.data())["orderUpdated"]["status"] == "PAID"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_shared_subscriptions_count_towards_the_cap_per_connection(
    settings: Settings, protocol: str
) -> None:
    capped = settings.model_copy(update={"max_subscriptions_per_connection": 2})
    async with running_server(capped) as server, httpx.AsyncClient(timeout=60) as http:
        _, order_id = await placed_order(GraphQLClient(server.graphql_url, http))
        async with subscriber(server.ws_url, protocol) as ws:
            for _ in range(2):
                await ws.subscribe(ORDER_UPDATED, {"id": order_id})
                await ws.data()
            await ws.subscribe(ORDER_UPDATED, {"id": order_id})
            refused = await ws.message()
    assert refused["type"] == "error"
    assert "subscription limit reached" in str(refused["payload"]).lower()


ONE = "subscription($id: ID!) { orderUpdated(id: $id) { id } }"
TWO_OPERATIONS = f"{ONE.replace('subscription', 'subscription A', 1)} query B {{ __typename }}"


@pytest.mark.parametrize(
    ("document", "operation_name", "shared"),
    [
        (ONE, None, True),
        ("subscription($id: ID!) { o: orderUpdated(id: $id) { status } }", None, True),
        (TWO_OPERATIONS, "A", True),
        (TWO_OPERATIONS, "B", False),
        (TWO_OPERATIONS, None, False),
        ("subscription { ordersChanged { id } }", None, False),
        ("subscription($id: ID!) { orderUpdated(id: $id) { id } x: orderUpdated(id: $id) { id } }",
         None, False),
        ("subscription($id: ID!) { ...F } fragment F on Subscription { orderUpdated(id: $id) "
         "{ id } }", None, False),
        ("subscription($id: ID!) { orderUpdated(id: $id) { id ", None, False),
        (ONE + " " * 10_000, None, False),
    ],
)  # fmt: skip
def test_only_subscriptions_to_one_shared_field_are_shared(
    document: str, operation_name: str | None, shared: bool
) -> None:
    assert Broadcasts(schema, json.dumps).shared(document, operation_name) is shared


async def test_with_sharing_off_each_subscriber_runs_its_own_subscription(
    settings: Settings,
) -> None:
    unshared = settings.model_copy(update={"shared_subscriptions": False})
    async with running_server(unshared) as server, httpx.AsyncClient(timeout=30) as http:
        gql = GraphQLClient(server.graphql_url, http)
        _, order_id = await placed_order(gql)
        api: Api = server.app.state.api
        async with (
            subscriber(server.ws_url, TRANSPORT_WS) as one,
            subscriber(server.ws_url, LEGACY_WS) as two,
        ):
            for ws in (one, two):
                await ws.subscribe(ORDER_UPDATED, {"id": order_id})
                assert (await ws.data())["orderUpdated"]["status"] == "PLACED"
            assert broadcasts_of(server).groups == {}
            assert watch_count(api.services.changes) == 2  # one watch per subscriber
            await gql.ok(PAY_ORDER, orderId=order_id)
            for ws in (one, two):
                assert (await ws.data())["orderUpdated"]["status"] == "PAID"
