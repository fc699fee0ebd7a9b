"""The typed GraphQL context (``Info[Context, None]``), made once per request or socket."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from app.security.principal import Principal
from app.services import Services


@dataclass
class Context:
    """What resolvers may use: the process's services and the current request."""

    services: Services
    request: Request | WebSocket
    response: Response | WebSocket
    request_id: str
    principal: Principal | None = None  # who is asking; None: anonymous
    connection_params: dict[str, object] | None = None  # a WebSocket's connection_init payload
