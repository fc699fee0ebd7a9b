"""Limits on what one HTTP request may send, and the GraphQL-shaped error that refuses it."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config.logs import current_request_id


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """A refusal before GraphQL runs, in the shape GraphQL clients read: `errors[0]`."""
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


_DRAIN_BYTES = 16 << 20


class BodySizeLimit:
    """Refuse request bodies over `max_bytes` with 413 before the application reads them.

    A declared Content-Length over the limit is refused at once; a chunked body is read up to
    the limit and refused as soon as it passes it, so no body larger than the limit is ever
    held in memory.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.max_bytes
            except ValueError:
                await error_response(400, "BAD_REQUEST", "Content-Length is not a number")(
                    scope, receive, send
                )
                return
            if too_large:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        # No length declared (chunked): buffer up to the limit, then replay to the app.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, replay([], message, receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        await self.app(scope, replay([body], None, receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Read (and drop) what the client is still sending, up to a bound, so that it sees
        # the 413 rather than a connection reset; a client sending more is cut off.
        drained = 0
        while drained <= _DRAIN_BYTES:
            message_in = await receive()
            if message_in["type"] != "http.request":
                break
            drained += len(message_in.get("body", b""))
            if not message_in.get("more_body", False):
                break
        message = (
            f"the request body is larger than {self.max_bytes} bytes "
            f"(SHOP_MAX_BODY_BYTES); request id {current_request_id.get()}"
        )
        await error_response(413, "PAYLOAD_TOO_LARGE", message, {"Connection": "close"})(
            scope, receive, send
        )


def replay(bodies: list[bytes], pending: Message | None, receive: Receive) -> Receive:
    """A receive that hands out the buffered body first, then defers to the real one."""
    queue: list[Message] = [{"type": "http.request", "body": b, "more_body": False} for b in bodies]
    if pending is not None:
        queue.append(pending)

    async def replayed() -> Message:
        if queue:
            return queue.pop(0)
        return await receive()

    return replayed
