"""Who may do what, with a JWT secret configured: one test per rule of docs/security.md."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import jwt
import pytest
import websockets
from pydantic import SecretStr

from app.config.settings import Settings, SettingsError, load_settings
from app.projections.registry import PROJECTIONS
from app.runtime.bootstrap import Stores
from app.security.principal import UserRole
from app.security.tokens import mint_token
from devtools.graphql_client import (
    CANCEL_ORDER,
    CHANGE_PRODUCT_PRICE,
    CREATE_PRODUCT,
    PAY_ORDER,
    PLACE_ORDER,
    REGISTER_CUSTOMER,
    RESTOCK_PRODUCT,
    SHIP_ORDER,
    GraphQLClient,
)
from devtools.servers import ServerUnderTest, running_server
from devtools.store_snapshot import write_store
from devtools.ws_client import LEGACY_WS, PROTOCOLS, TRANSPORT_WS, Subscriber, subscriber

SECRET = "test-secret-of-at-least-32-bytes-long"
NEXT_YEAR = int(time.time()) + 366 * 86400  # made at collection: must outlast the run
OTHER_SECRET = "another-secret-of-at-least-32-bytes"
UNSIGNED = jwt.encode({"sub": "a", "role": "admin", "exp": 9999999999}, None, algorithm="none")
ORDER_FIELDS = "id status customer { id } version"


def token(role: UserRole, subject: str = "admin", ttl_s: int = 86400, secret: str = SECRET) -> str:
    return mint_token(secret, role, subject, ttl_s)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@dataclass
class Shop:
    """A secured server, clients for each kind of caller, and two customers with an order."""

    server: ServerUnderTest
    stores: Stores
    admin: GraphQLClient
    anonymous: GraphQLClient
    ada: GraphQLClient
    bob: GraphQLClient
    ada_id: str
    bob_id: str
    product_id: str
    ada_order: str
    bob_order: str


@pytest.fixture
def secured(settings: Settings) -> Settings:
    return settings.model_copy(update={"jwt_secret": SecretStr(SECRET)})


@pytest.fixture
async def shop(secured: Settings, stores: Stores) -> AsyncIterator[Shop]:
    async with running_server(secured) as server, AsyncExitStack() as stack:

        async def client(credentials: str | None = None) -> GraphQLClient:
            headers = bearer(credentials) if credentials else {}
            http = await stack.enter_async_context(httpx.AsyncClient(timeout=60, headers=headers))
            return GraphQLClient(server.graphql_url, http)

        admin = await client(token(UserRole.ADMIN))
        ada_id = await admin.customer("ada@example.com", "Ada")
        bob_id = await admin.customer("bob@example.com", "Bob")
        product_id = await admin.product(stock=100)
        ada = await client(token(UserRole.CUSTOMER, ada_id))
        bob = await client(token(UserRole.CUSTOMER, bob_id))
        ada_placed = await ada.order(ada_id, (product_id, 1))
        bob_placed = await bob.order(bob_id, (product_id, 2))
        for owner, placed in ((ada, ada_placed), (bob, bob_placed)):  # projected before reads
            await owner.data(
                "query($t: String) { orders(consistentWith: $t) { totalCount } }",
                {"t": placed["consistencyToken"]},
            )
        ada_order, bob_order = ada_placed["orderId"], bob_placed["orderId"]
        yield Shop(
            server, stores, admin, await client(), ada, bob, ada_id, bob_id, product_id,
            ada_order, bob_order,
        )  # fmt: skip


async def refused(client: GraphQLClient, document: str, **input: Any) -> list[dict[str, Any]]:
    payload = await client.mutate(document, **input)
    assert (payload["version"], payload["consistencyToken"]) == (None, None)
    errors: list[dict[str, Any]] = payload["userErrors"]
    return errors


async def codes_of(
    client: GraphQLClient, query: str, variables: dict[str, Any] | None = None
) -> list[str]:
    body = await client.execute(query, variables)
    return [error["extensions"]["code"] for error in body.get("errors", [])]


async def snapshot(shop: Shop) -> dict[str, list[tuple[Any, ...]]]:
    return await write_store(shop.stores.write_engine)


# ---- mutations -------------------------------------------------------------------------------


async def test_anonymous_callers_may_send_no_command_and_nothing_is_written(shop: Shop) -> None:
    before = await snapshot(shop)
    line = [{"productId": shop.product_id, "quantity": 1}]
    attempts = [
        (REGISTER_CUSTOMER, {"email": "eve@example.com", "name": "Eve"}),
        (CREATE_PRODUCT, {"sku": "X-1", "name": "X", "priceCents": 1, "stock": 1}),
        (CHANGE_PRODUCT_PRICE, {"productId": shop.product_id, "priceCents": 5}),
        (RESTOCK_PRODUCT, {"productId": shop.product_id, "quantity": 5}),
        (PLACE_ORDER, {"customerId": shop.ada_id, "lines": line}),
        (PAY_ORDER, {"orderId": shop.ada_order}),
        (SHIP_ORDER, {"orderId": shop.ada_order}),
        (CANCEL_ORDER, {"orderId": shop.ada_order}),
    ]  # fmt: skip
    for document, input in attempts:
        errors = await refused(shop.anonymous, document, **input)
        assert [e["code"] for e in errors] == ["UNAUTHENTICATED"], document
    assert await snapshot(shop) == before


async def test_catalogue_changes_registration_and_shipping_need_an_admin(shop: Shop) -> None:
    before = await snapshot(shop)
    attempts = [
        (REGISTER_CUSTOMER, {"email": "eve@example.com", "name": "Eve"}),
        (CREATE_PRODUCT, {"sku": "X-1", "name": "X", "priceCents": 1, "stock": 1}),
        (CHANGE_PRODUCT_PRICE, {"productId": shop.product_id, "priceCents": 5}),
        (RESTOCK_PRODUCT, {"productId": shop.product_id, "quantity": 5}),
        (SHIP_ORDER, {"orderId": shop.ada_order}),
    ]
    for document, input in attempts:
        errors = await refused(shop.ada, document, **input)
        assert [e["code"] for e in errors] == ["FORBIDDEN"], document
    assert await snapshot(shop) == before
    # The same commands from an admin go through.
    await shop.admin.ok(RESTOCK_PRODUCT, productId=shop.product_id, quantity=5)
    await shop.admin.ok(PAY_ORDER, orderId=shop.ada_order)
    await shop.admin.ok(SHIP_ORDER, orderId=shop.ada_order)


async def test_a_customer_orders_only_for_themselves(shop: Shop) -> None:
    before = await snapshot(shop)
    line = [{"productId": shop.product_id, "quantity": 1}]
    errors = await refused(shop.ada, PLACE_ORDER, customerId=shop.bob_id, lines=line)
    assert [(e["code"], e["field"]) for e in errors] == [("FORBIDDEN", ["customerId"])]
    assert await snapshot(shop) == before


async def test_someone_elses_order_cannot_be_paid_or_cancelled_and_reads_as_missing(
    shop: Shop,
) -> None:
    before = await snapshot(shop)
    for document in (PAY_ORDER, CANCEL_ORDER):
        errors = await refused(shop.ada, document, orderId=shop.bob_order)
        missing = await refused(shop.ada, document, orderId="7e9c2b1a-0000-4000-8000-000000000000")
        # Exactly what a missing order gives: nothing tells Ada that Bob's order exists.
        assert errors == missing
        assert [(e["code"], e["field"]) for e in errors] == [("NOT_FOUND", ["orderId"])]
    assert await snapshot(shop) == before
    paid = await shop.ada.ok(PAY_ORDER, orderId=shop.ada_order)
    assert paid["version"] == 2
    await shop.bob.ok(CANCEL_ORDER, orderId=shop.bob_order, reason="changed my mind")


async def test_a_command_id_does_not_hand_someone_elses_result_to_another_caller(
    shop: Shop,
) -> None:
    first = await shop.bob.ok(PAY_ORDER, orderId=shop.bob_order, commandId="pay-bob-1")
    again = await shop.bob.ok(PAY_ORDER, orderId=shop.bob_order, commandId="pay-bob-1")
    assert again["consistencyToken"] == first["consistencyToken"]
    # Ada replays Bob's commandId with the same input: refused as if the order did not exist.
    errors = await refused(shop.ada, PAY_ORDER, orderId=shop.bob_order, commandId="pay-bob-1")
    assert [e["code"] for e in errors] == ["NOT_FOUND"]


async def test_a_caller_cannot_squat_another_callers_command_id(shop: Shop) -> None:
    line = [{"productId": shop.product_id, "quantity": 1}]
    bobs = await shop.bob.ok(PLACE_ORDER, customerId=shop.bob_id, lines=line, commandId="X")
    adas = await shop.ada.ok(PLACE_ORDER, customerId=shop.ada_id, lines=line, commandId="X")
    assert adas["orderId"] not in (bobs["orderId"], shop.ada_order)
    # Each one's repeat still replays their own order.
    again = await shop.bob.ok(PLACE_ORDER, customerId=shop.bob_id, lines=line, commandId="X")
    assert again["orderId"] == bobs["orderId"]
    again = await shop.ada.ok(PLACE_ORDER, customerId=shop.ada_id, lines=line, commandId="X")
    assert again["orderId"] == adas["orderId"]


# ---- queries -------------------------------------------------------------------------------


async def test_the_catalogue_is_public(shop: Shop) -> None:
    data = await shop.anonymous.data(
        "query($id: ID!) { product(id: $id) { id stock } products { totalCount } }",
        {"id": shop.product_id},
    )
    assert data["product"]["id"] == shop.product_id
    assert data["products"]["totalCount"] == 1


@pytest.mark.parametrize(
    "query",
    [
        "query($id: ID!) { order(id: $id) { id } }",
        "{ orders { totalCount } }",
        "query($id: ID!) { customer(id: $id) { id } }",
        "{ customers { totalCount } }",
        '{ salesReport(from: "2026-01-01", to: "2026-01-02") { date } }',
        "{ projections { name } }",
    ],
)
async def test_everything_but_the_catalogue_needs_credentials(shop: Shop, query: str) -> None:
    body = await shop.anonymous.execute(query, {"id": shop.ada_order} if "$id" in query else None)
    assert not any((body["data"] or {}).values())  # the field is null (or, non-null, the data)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]
    assert "Bearer" in body["errors"][0]["message"]


@pytest.mark.parametrize(
    "query",
    [
        "{ customers { totalCount } }",
        '{ salesReport(from: "2026-01-01", to: "2026-01-02") { date } }',
        "{ projections { name } }",
    ],
)
async def test_lists_of_customers_sales_and_projections_are_for_admins(
    shop: Shop, query: str
) -> None:
    assert await codes_of(shop.ada, query) == ["FORBIDDEN"]
    assert await codes_of(shop.admin, query) == []


async def test_a_customer_reads_their_own_orders_and_profile_only(shop: Shop) -> None:
    query = """query($mine: ID!, $theirs: ID!, $me: ID!, $them: ID!) {
      mine: order(id: $mine) { id }  theirs: order(id: $theirs) { id }
      me: customer(id: $me) { id orders { totalCount } }  them: customer(id: $them) { id }
      orders { edges { node { id } } }
    }"""
    variables = {
        "mine": shop.ada_order, "theirs": shop.bob_order, "me": shop.ada_id, "them": shop.bob_id
    }  # fmt: skip
    data = await shop.ada.data(query, variables)
    assert data["mine"] == {"id": shop.ada_order}
    assert data["theirs"] is None
    assert data["me"] == {"id": shop.ada_id, "orders": {"totalCount": 1}}
    assert data["them"] is None
    assert data["orders"]["edges"] == [{"node": {"id": shop.ada_order}}]
    everyone = await shop.admin.data("{ orders { totalCount } }")
    assert everyone["orders"]["totalCount"] == 2


async def test_asking_for_another_customers_orders_is_forbidden(shop: Shop) -> None:
    query = "query($c: ID) { orders(filter: {customerId: $c}) { totalCount } }"
    assert await codes_of(shop.ada, query, {"c": shop.bob_id}) == ["FORBIDDEN"]
    own = await shop.ada.data(query, {"c": shop.ada_id})
    assert own["orders"]["totalCount"] == 1


async def test_a_payloads_read_model_follows_the_read_rules(shop: Shop) -> None:
    document = """mutation($input: PayOrderInput!) {
      payOrder(input: $input) { userErrors { code } order { id status } } }"""
    paid = await shop.ada.data(document, {"input": {"orderId": shop.ada_order}})
    assert paid["payOrder"] == {"userErrors": [], "order": {"id": shop.ada_order, "status": "PAID"}}
    refused_pay = await shop.ada.data(document, {"input": {"orderId": shop.bob_order}})
    assert refused_pay["payOrder"] == {"userErrors": [{"code": "NOT_FOUND"}], "order": None}
    anonymous = await shop.anonymous.execute(document, {"input": {"orderId": shop.ada_order}})
    assert "errors" not in anonymous  # refused in userErrors; the payload's order is null
    refusal = {"userErrors": [{"code": "UNAUTHENTICATED"}], "order": None}
    assert anonymous["data"]["payOrder"] == refusal
    assert anonymous["data"]["payOrder"] == {
        "userErrors": [{"code": "UNAUTHENTICATED"}],
        "order": None,
    }


# ---- consistency tokens ----------------------------------------------------------------------

CAUGHT_UP = """subscription($t: String!, $ms: Int) {
  projectionsCaughtUp(token: $t, timeoutMs: $ms) { caughtUp } }"""
ORDERS_AFTER = "query($t: String) { orders(consistentWith: $t) { totalCount } }"
PRODUCT_AFTER = "query($id: ID!, $t: String) { product(id: $id, consistentWith: $t) { id } }"
NOT_ISSUED_TO_CALLER = "is not a consistency token issued by this service to this caller"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _naming(token: str, aggregate_id: str, version: int) -> str:
    """The token with its JSON changed to name another aggregate and version, the rest kept:
    what a caller without the service's key can make of a token of their own."""
    body, dot, rest = token.partition(".")
    fields = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    fields["a"] = [
        [kind, UUID(aggregate_id).hex, version, types] for kind, _, _, types in fields["a"]
    ]
    return _b64(json.dumps(fields).encode()) + dot + rest


def _as_issued_before(order_id: str, version: int) -> str:
    """An unsigned token, as the service issued them before they were signed."""
    body = {"f": 1, "a": [["Order", UUID(order_id).hex, version, ["OrderPlaced"]]]}
    return _b64(json.dumps(body).encode())


async def _refused_token(client: GraphQLClient, query: str, variables: dict[str, Any]) -> None:
    started = time.monotonic()
    body = await client.execute(query, variables)
    assert body["data"] is None or not any(body["data"].values()), body
    errors = body.get("errors", [])
    refusals = [(e["extensions"]["code"], NOT_ISSUED_TO_CALLER in e["message"]) for e in errors]
    assert refusals == [("VALIDATION", True)], body
    assert time.monotonic() - started < 5, "refused only after waiting"  # the wait's timeout


async def test_a_consistency_token_serves_only_the_caller_it_was_issued_to(shop: Shop) -> None:
    paid = await shop.ada.ok(PAY_ORDER, orderId=shop.ada_order)
    adas = paid["consistencyToken"]
    assert (await shop.ada.data(ORDERS_AFTER, {"t": adas}))["orders"]["totalCount"] == 1
    for someone_else in (shop.bob, shop.admin):
        await _refused_token(someone_else, ORDERS_AFTER, {"t": adas})
    await _refused_token(shop.anonymous, PRODUCT_AFTER, {"id": shop.product_id, "t": adas})


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_forged_consistency_token_is_refused_at_once_so_it_is_no_oracle(
    shop: Shop, protocol: str
) -> None:
    own = (await shop.ada.ok(PAY_ORDER, orderId=shop.ada_order))["consistencyToken"]
    forgeries = [
        _naming(own, shop.bob_order, 1),  # Bob's order is at version 1,
        _naming(own, shop.bob_order, 99),  # not at 99: the answers used to differ
        _naming(own, str(uuid.uuid4()), 1),  # and no such order
        _as_issued_before(shop.bob_order, 1),
    ]
    ada = {"Authorization": f"Bearer {token(UserRole.CUSTOMER, shop.ada_id)}"}
    async with subscriber(shop.server.ws_url, protocol, init_payload=ada) as ws:
        await ws.subscribe(CAUGHT_UP, {"t": own, "ms": 10_000})
        assert (await ws.data())["projectionsCaughtUp"]["caughtUp"] is True
        assert (await ws.message())["type"] == "complete"
        for forged in forgeries:
            await ws.subscribe(CAUGHT_UP, {"t": forged, "ms": 0})
            assert await _refusal(ws) == ["VALIDATION"], forged
            await _refused_token(shop.ada, ORDERS_AFTER, {"t": forged})


# ---- credentials -------------------------------------------------------------------------


def _unsigned(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        ("Bearer not-a-jwt", "invalid"),
        ("Basic YWRtaW46YWRtaW4=", "Bearer"),
        ("Bearer", "Bearer"),
        (f"Bearer {token(UserRole.ADMIN, ttl_s=-3600)}", "expired"),
        (f"Bearer {token(UserRole.ADMIN, secret=OTHER_SECRET)}", "invalid"),
        (f"Bearer {token(UserRole.CUSTOMER, 'not-a-uuid')}", "customer id"),
        (f"Bearer {_unsigned({'sub': 'x', 'role': 'root', 'exp': NEXT_YEAR})}", "role"),
        (f"Bearer {_unsigned({'sub': 'x', 'role': 'admin'})}", "exp"),
        (f"Bearer {UNSIGNED}", "invalid"),
        ("Bearer " + "A" * 10_000, "too long"),
    ],
)
async def test_unusable_credentials_are_refused_with_401(
    shop: Shop, authorization: str, reason: str
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            shop.server.graphql_url,
            json={"query": "{ products { totalCount } }"},
            headers={"Authorization": authorization},
        )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    (error,) = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert reason in error["message"]
    assert SECRET not in response.text


# ---- subscriptions -----------------------------------------------------------------------

ORDER_UPDATED = f"subscription($id: ID!) {{ orderUpdated(id: $id) {{ {ORDER_FIELDS} }} }}"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_subscriptions_follow_the_same_rules(shop: Shop, protocol: str) -> None:
    ada = {"Authorization": f"Bearer {token(UserRole.CUSTOMER, shop.ada_id)}"}
    async with subscriber(shop.server.ws_url, protocol, init_payload=ada) as ws:
        # Bob's order reads as one that does not exist: subscribed first, it never emits.
        await ws.subscribe(ORDER_UPDATED, {"id": shop.bob_order})
        mine = await ws.subscribe(ORDER_UPDATED, {"id": shop.ada_order})
        first = await ws.message()
        assert (first["id"], first["payload"]["data"]["orderUpdated"]["status"]) == (mine, "PLACED")
        await shop.bob.ok(PAY_ORDER, orderId=shop.bob_order)
        await shop.ada.ok(PAY_ORDER, orderId=shop.ada_order)
        update = await ws.message()
        assert (update["id"], update["payload"]["data"]["orderUpdated"]["status"]) == (mine, "PAID")

        await ws.subscribe(
            "subscription($c: ID) { ordersChanged(customerId: $c) { id } }", {"c": shop.bob_id}
        )
        assert await _refusal(ws) == ["FORBIDDEN"]
        await ws.subscribe("subscription { projectionStatus { name } }")
        assert await _refusal(ws) == ["FORBIDDEN"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_anonymous_subscriber_gets_the_catalogue_rules(shop: Shop, protocol: str) -> None:
    async with subscriber(shop.server.ws_url, protocol) as ws:
        await ws.subscribe(ORDER_UPDATED, {"id": shop.ada_order})
        assert await _refusal(ws) == ["UNAUTHENTICATED"]
        await ws.subscribe("subscription { ordersChanged { id } }")
        assert await _refusal(ws) == ["UNAUTHENTICATED"]


async def test_an_admin_token_in_connection_init_sees_every_order(shop: Shop) -> None:
    admin = {"authorization": f"Bearer {token(UserRole.ADMIN)}"}
    async with subscriber(shop.server.ws_url, TRANSPORT_WS, init_payload=admin) as ws:
        await ws.subscribe(ORDER_UPDATED, {"id": shop.bob_order})
        data = await ws.data()
        assert data["orderUpdated"]["customer"]["id"] == shop.bob_id


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_bad_credentials_in_connection_init_end_the_connection(
    shop: Shop, protocol: str
) -> None:
    expired = {"Authorization": f"Bearer {token(UserRole.ADMIN, ttl_s=-3600)}"}
    async with websockets.connect(shop.server.ws_url, subprotocols=[protocol]) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": expired}))
        if protocol == LEGACY_WS:
            message = json.loads(await asyncio.wait_for(socket.recv(), 10))
            assert message["type"] == "connection_error"
            assert message["payload"]["extensions"]["code"] == "UNAUTHENTICATED"
            assert "expired" in message["payload"]["message"]
        closed = await _closing(socket)
    if protocol == TRANSPORT_WS:
        assert closed.rcvd is not None
        assert closed.rcvd.code == 4403


async def _closing(socket: websockets.ClientConnection) -> websockets.ConnectionClosed:
    """Read until the server closes the connection; fail if it keeps it open."""
    try:
        while True:
            await asyncio.wait_for(socket.recv(), 10)
    except websockets.ConnectionClosed as closed:
        return closed


async def _refusal(ws: Subscriber) -> list[str]:
    """The error codes of an operation the server ends at once with an error."""
    first, *rest = await ws.until_done()
    assert [m["type"] for m in rest] in ([], ["complete"]), rest
    errors = first["payload"] if first["type"] == "error" else first["payload"]["errors"]
    return [error["extensions"]["code"] for error in errors]


# ---- open mode and `shop token` --------------------------------------------------------------


async def test_without_a_secret_the_service_is_open_and_says_so(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_server(settings) as server, httpx.AsyncClient(timeout=60) as http:
        gql = GraphQLClient(server.graphql_url, http)
        data = await gql.data("{ customers { totalCount } projections { name } }")
        await gql.customer()  # an admin's command, from anyone
    assert data["customers"]["totalCount"] == 0
    assert len(data["projections"]) == len(PROJECTIONS)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("the API is OPEN" in message for message in warnings)


def test_shop_token_mints_a_token_the_server_accepts(shop_bin: Path) -> None:
    env = {"SHOP_JWT_SECRET": SECRET, "PATH": "/usr/bin:/bin"}
    customer = "0b6f2a7c-3b7e-4b43-9a57-1d1f0f7d9c11"
    minted = subprocess.run(
        [shop_bin, "token", "--role", "customer", "--customer", customer],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    claims = jwt.decode(minted.stdout.strip(), SECRET, algorithms=["HS256"])
    assert (claims["role"], claims["sub"]) == ("customer", customer)
    assert 3500 < claims["exp"] - time.time() <= 3600
    refused = subprocess.run(
        [shop_bin, "token", "--role", "customer"], env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert (refused.returncode, "--customer" in refused.stderr) == (2, True)
    unset = subprocess.run(
        [shop_bin, "token", "--role", "admin"], env={"PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (unset.returncode, "SHOP_JWT_SECRET" in unset.stderr) == (2, True)


def test_a_short_secret_is_refused_without_being_echoed() -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(jwt_secret="hunter2-is-too-short")
    assert "SHOP_JWT_SECRET=<hidden>" in str(refused.value)
    assert "hunter2" not in str(refused.value)
    # Empty means unset, but open access from an empty secret must be asked for by name
    # (tests/security/test_open_access.py).
    assert load_settings(jwt_secret="", allow_open_access=True).open_access
