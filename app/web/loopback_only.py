"""Open access by default is for this machine only: without credentials configured (and
without SHOP_ALLOW_OPEN_ACCESS), only connections that arrived on a loopback address are
served."""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from app.config.settings import is_loopback
from app.web.body_limit import error_response

log = logging.getLogger("app.web.loopback_only")

REFUSAL = (
    "this service answers on a loopback address only until it is configured to check credentials"
)


class LoopbackOnly:
    """Refuse requests and WebSockets that arrived on an address other than loopback.

    `shop serve` refuses to bind one when the service is open; this covers a server that binds
    the app itself (`uvicorn --host 0.0.0.0 app.web.asgi:create_app --factory`), whose address
    the app cannot see at start."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._warned = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # No server address means a Unix socket: reachable from this machine only.
        server = scope.get("server")
        if scope["type"] not in ("http", "websocket") or not server or is_loopback(server[0]):
            await self.app(scope, receive, send)
            return
        if not self._warned:  # once: whoever can reach the port can fill the log otherwise
            self._warned = True
            log.error(
                "refused a connection to %s: the API is open (no SHOP_JWT_SECRET or "
                "SHOP_JWT_JWKS_URL), which is for loopback addresses only; set one of them, "
                "or SHOP_ALLOW_OPEN_ACCESS=true to serve open on purpose",
                server[0],
            )
        if scope["type"] == "http":
            await error_response(403, "FORBIDDEN", REFUSAL)(scope, receive, send)
        else:
            await WebSocketClose(code=1008, reason=REFUSAL)(scope, receive, send)
