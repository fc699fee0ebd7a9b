"""A small GraphQL-over-WebSocket client speaking both subprotocols."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
PROTOCOLS = (TRANSPORT_WS, LEGACY_WS)


class Subscriber:
    """One connection; `subscribe` starts an operation, `message` reads the next message."""

    def __init__(self, socket: ClientConnection, protocol: str) -> None:
        self.socket = socket
        self.protocol = protocol
        self.ids = 0

    @classmethod
    async def connect(
        cls,
        url: str,
        protocol: str = TRANSPORT_WS,
        *,
        headers: dict[str, str] | None = None,
        init_payload: dict[str, Any] | None = None,
        ack_timeout_s: float = 10,
        **options: Any,
    ) -> Subscriber:
        """Open a connection and have it acknowledged; `options` go to websockets.connect."""
        socket = await websockets.connect(
            url, subprotocols=[Subprotocol(protocol)], additional_headers=headers, **options
        )
        try:
            init = {"type": "connection_init", "payload": init_payload or {}}
            await socket.send(json.dumps(init))
            while True:
                ack = json.loads(await asyncio.wait_for(socket.recv(), ack_timeout_s))
                if ack["type"] != "ka":
                    break
            assert ack["type"] == "connection_ack", ack
        except BaseException:
            await socket.close()
            raise
        return cls(socket, protocol)

    async def close(self) -> None:
        await self.socket.close()

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        self.ids += 1
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        payload = {"query": query, "variables": variables or {}}
        await self.socket.send(json.dumps({"id": str(self.ids), "type": kind, "payload": payload}))
        return str(self.ids)

    async def stop(self, operation: str) -> None:
        kind = "complete" if self.protocol == TRANSPORT_WS else "stop"
        await self.socket.send(json.dumps({"id": operation, "type": kind}))

    async def message(self, timeout_s: float | None = 15) -> dict[str, Any]:
        """The next message that is not a keep-alive (a ping is answered)."""
        while True:
            raw = await asyncio.wait_for(self.socket.recv(), timeout_s)
            message: dict[str, Any] = json.loads(raw)
            if message["type"] == "ping":
                await self.socket.send(json.dumps({"type": "pong"}))
            elif message["type"] not in ("ka", "pong"):
                return message

    async def until_done(self, timeout_s: float = 15) -> list[dict[str, Any]]:
        """Every message up to the operation's end (complete, or an error, which ends it)."""
        messages = [await self.message(timeout_s)]
        while messages[-1]["type"] not in ("complete", "error"):
            messages.append(await self.message(timeout_s))
        return messages

    async def data(self, timeout_s: float | None = 15) -> dict[str, Any]:
        """The data of the next result; fails on anything else."""
        message = await self.message(timeout_s)
        assert message["type"] in ("next", "data"), message
        assert "errors" not in message["payload"], message["payload"]
        data: dict[str, Any] = message["payload"]["data"]
        return data


@asynccontextmanager
async def subscriber(
    url: str,
    protocol: str,
    headers: dict[str, str] | None = None,
    init_payload: dict[str, Any] | None = None,
) -> AsyncIterator[Subscriber]:
    """A connection for the block's duration."""
    connection = await Subscriber.connect(url, protocol, headers=headers, init_payload=init_payload)
    try:
        yield connection
    finally:
        await connection.close()
