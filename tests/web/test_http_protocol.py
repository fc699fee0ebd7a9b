"""Each response leaves in one socket write: writes within one step of the event loop are
joined (app/web/http_protocol.py), on real sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from app.config.settings import Settings
from app.web.asgi import server_options
from app.web.http_protocol import CoalescedWrites, CoalescingHttpToolsProtocol
from devtools.servers import ServerUnderTest


@pytest.fixture
async def pair() -> AsyncIterator[tuple[CoalescedWrites, socket.socket]]:
    """A coalescing transport on one end of a socket pair, and the other end."""
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    transport, _ = await asyncio.get_running_loop().connect_accepted_socket(asyncio.Protocol, ours)
    yield CoalescedWrites(transport), theirs
    transport.close()
    theirs.close()


def received(peer: socket.socket) -> bytes:
    try:
        return peer.recv(65536)
    except BlockingIOError:
        return b""


async def test_writes_of_one_step_leave_together_at_its_end(
    pair: tuple[CoalescedWrites, socket.socket],
) -> None:
    writes, peer = pair
    writes.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    writes.write(b"{}")
    assert received(peer) == b""  # nothing sent within the step
    await asyncio.sleep(0)
    assert received(peer) == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"
    writes.write(b"next")  # a later step starts a new write
    await asyncio.sleep(0)
    assert received(peer) == b"next"


async def test_closing_sends_what_was_written_first(
    pair: tuple[CoalescedWrites, socket.socket],
) -> None:
    writes, peer = pair
    writes.write(b"last words")
    writes.close()
    await asyncio.sleep(0.01)
    assert received(peer) == b"last words"
    assert received(peer) == b""  # then the end of the stream
    assert writes.is_closing()  # answered by the socket's own transport


async def test_the_served_app_answers_through_it(
    server: ServerUnderTest, settings: Settings
) -> None:
    assert server_options(settings)["http"] is CoalescingHttpToolsProtocol
    async with httpx.AsyncClient() as client:
        for _ in range(3):  # one keep-alive connection, several responses
            response = await client.post(server.graphql_url, json={"query": "{ __typename }"})
            assert response.json() == {"data": {"__typename": "Query"}}
