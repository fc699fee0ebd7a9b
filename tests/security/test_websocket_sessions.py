"""How long WebSockets live: until the token expires, connection_init in time, a cap per process."""

from __future__ import annotations

import asyncio

import pytest
import websockets
from pydantic import SecretStr
from websockets.typing import Subprotocol

from app.config.settings import Settings
from app.security.principal import UserRole
from app.security.tokens import mint_token
from devtools.servers import running_server
from devtools.ws_client import PROTOCOLS, TRANSPORT_WS, Subscriber, subscriber

SECRET = "test-secret-of-at-least-32-bytes-long"
STATUS = "subscription { projectionStatus(intervalMs: 200) { name } }"


async def close_code(socket: websockets.ClientConnection, within_s: float) -> int | None:
    """The code the server closes the connection with; fails if it stays open that long."""
    try:
        async with asyncio.timeout(within_s):
            while True:
                await socket.recv()
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_socket_is_closed_when_its_token_expires(settings: Settings, protocol: str) -> None:
    secured = settings.model_copy(update={"jwt_secret": SecretStr(SECRET)})
    expiring = {"Authorization": f"Bearer {mint_token(SECRET, UserRole.ADMIN, 'admin', 3)}"}
    async with (
        running_server(secured) as server,
        subscriber(server.ws_url, protocol, init_payload=expiring) as ws,
    ):
        await ws.subscribe(STATUS)
        assert (await ws.data())["projectionStatus"]  # delivering until the token expires
        assert await close_code(ws.socket, within_s=10) == 4403
        assert ws.socket.close_reason == "token expired"


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_socket_without_connection_init_is_closed(
    settings: Settings, protocol: str
) -> None:
    quick = settings.model_copy(update={"ws_connection_init_timeout_s": 0.5})
    async with (
        running_server(quick) as server,
        websockets.connect(server.ws_url, subprotocols=[Subprotocol(protocol)]) as socket,
    ):
        assert await close_code(socket, within_s=5) == 4408


async def test_sockets_past_the_cap_are_refused(settings: Settings) -> None:
    capped = settings.model_copy(update={"max_websockets": 2})
    async with running_server(capped) as server:
        first = await Subscriber.connect(server.ws_url)
        async with subscriber(server.ws_url, TRANSPORT_WS) as second:
            async with websockets.connect(server.ws_url, subprotocols=[TRANSPORT_WS]) as third:
                assert await close_code(third, within_s=5) == 1013
                assert "SHOP_MAX_WEBSOCKETS" in (third.close_reason or "")
            for ws in (first, second):
                await ws.subscribe(STATUS)
                assert (await ws.data())["projectionStatus"]
            await first.close()
            fourth = await admitted(server.ws_url)
            await fourth.subscribe(STATUS)
            assert (await fourth.data())["projectionStatus"]
            await fourth.close()


async def admitted(url: str) -> Subscriber:
    """A connection, once the server has ended the session of one just closed."""
    for _ in range(50):
        try:
            return await Subscriber.connect(url)
        except websockets.ConnectionClosed:
            await asyncio.sleep(0.1)
    return await Subscriber.connect(url)


async def test_a_socket_closed_after_its_init_deadline_frees_its_place(settings: Settings) -> None:
    # Once connection_init moved the deadline, the session must still end when the client
    # leaves: before the fix it waited for the deadline too, and the cap never came down.
    capped = settings.model_copy(update={"max_websockets": 1, "ws_connection_init_timeout_s": 0.3})
    async with running_server(capped) as server:
        first = await Subscriber.connect(server.ws_url)
        await first.subscribe(STATUS)
        assert (await first.data())["projectionStatus"]
        await asyncio.sleep(0.6)  # past the init deadline: the session now runs without one
        await first.close()
        second = await admitted(server.ws_url)
        await second.subscribe(STATUS)
        assert (await second.data())["projectionStatus"]
        await second.close()
