"""Request ids: taken from ``X-Request-ID`` when sane, made otherwise, echoed and logged."""

from __future__ import annotations

import re
from random import getrandbits

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config.logs import current_request_id

HEADER = "x-request-id"
_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_of(given: bytes | None) -> str:
    """The request id for an `X-Request-ID` header's value: itself when sane, else a new one."""
    text = (given or b"").decode("latin-1")
    # 128 random bits as 32 hex digits, like a uuid4's hex but without a system call per
    # request: an id names a request in the logs, it guards nothing.
    return text if _SANE.match(text) else f"{getrandbits(128):032x}"


class RequestIdMiddleware:
    """Give every HTTP request and WebSocket a request id, visible to logs and resolvers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(dict(scope["headers"]).get(HEADER.encode()))
        token = current_request_id.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((HEADER.encode(), request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current_request_id.reset(token)
