"""How long a GraphQL WebSocket lives: connection_init in time, no longer than its token, and
no more of them at once than a process allows (docs/security.md)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Coroutine
from contextlib import suppress
from typing import Any, TypeVar

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState

from app.pipeline.cancellation import cancel_and_wait
from app.security.principal import Principal

T = TypeVar("T")

INIT_TIMEOUT = (4408, "Connection initialisation timeout")  # graphql-transport-ws's own code
TOKEN_EXPIRED = (4403, "token expired")
TRY_AGAIN_LATER = 1013
STOP_SESSION_S = 1.0  # how long a session's operations get to stop before the close


class SessionDeadline:
    """When a WebSocket session ends: connection_init not sent in time, then once
    authenticated, its token's expiry (none for anonymous callers and open mode)."""

    def __init__(self, init_timeout_s: float) -> None:
        self._ends_at = time.time() + init_timeout_s
        self._close = INIT_TIMEOUT
        self._moved = asyncio.Event()

    def authenticated(self, principal: Principal | None) -> None:
        """connection_init accepted: the session now lasts as long as the caller's token."""
        expires_at = principal.expires_at if principal is not None else None
        self._ends_at = math.inf if expires_at is None else expires_at
        self._close = TOKEN_EXPIRED
        self._moved.set()

    async def guard(self, websocket: WebSocket, session: Coroutine[Any, Any, T]) -> T | None:
        """Run the session until it ends or the deadline passes; then stop its operations
        first (for up to STOP_SESSION_S, so nothing is sent after the close) and close it."""
        task = asyncio.ensure_future(session)
        try:
            while not await self._ended_or_moved(task):
                pass
            if task.done():
                return task.result()
            # strawberry's protocol handlers may swallow a cancellation, or wait in their
            # cleanup for an operation that does not end: ask again, but close regardless.
            with suppress(TimeoutError):
                await asyncio.wait_for(cancel_and_wait(task, nudge_s=0.2), STOP_SESSION_S)
            if websocket.application_state is not WebSocketState.DISCONNECTED:
                await websocket.close(*self._close)
            return None
        finally:
            task.cancel()

    async def _ended_or_moved(self, task: asyncio.Future[T]) -> bool:
        """Wait for the session to end, the deadline to pass (True) or move (False)."""
        self._moved.clear()
        moved = asyncio.ensure_future(self._moved.wait())
        timeout = None if math.isinf(self._ends_at) else max(0.0, self._ends_at - time.time())
        try:
            waiting: set[asyncio.Future[Any]] = {task, moved}
            await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            moved.cancel()
        return task.done() or not self._moved.is_set()


class WebSocketCap:
    """Counts the process's open WebSockets; one past the cap is accepted and closed at once
    with 1013 ("try again later") and a reason naming the setting."""

    def __init__(self, app: ASGIApp, max_websockets: int) -> None:
        self.app = app
        self.max_websockets = max_websockets
        self.open = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
        elif self.open >= self.max_websockets:
            await self.refuse(WebSocket(scope, receive, send))
        else:
            self.open += 1
            try:
                await self.app(scope, receive, send)
            finally:
                self.open -= 1

    async def refuse(self, websocket: WebSocket) -> None:
        # Accepted first: a refused handshake would tell the client nothing. A browser fails
        # a handshake that drops the subprotocol it asked for, so the first one is echoed.
        offered = websocket.scope.get("subprotocols") or [None]
        await websocket.accept(subprotocol=offered[0])
        reason = f"this server holds its limit of {self.max_websockets} WebSockets"
        await websocket.close(TRY_AGAIN_LATER, f"{reason} (SHOP_MAX_WEBSOCKETS); try again later")
