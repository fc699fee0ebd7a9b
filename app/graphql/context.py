"""The typed GraphQL context (``Info[Context, None]``), made once per request or socket."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from app.adapters.redis import RedisClient
from app.config.settings import Settings
from app.graphql.single_flight import SingleFlight
from app.pipeline.change_feed import ChangeFeed
from app.security.principal import Principal
from app.security.tokens import Authenticator

if TYPE_CHECKING:
    # Only for annotations: the read side must not import the write side at run time.
    from app.write.bus import CommandBus


@dataclass(frozen=True)
class Services:
    """What resolvers use, the same for every request of a process (made by the bootstrap)."""

    settings: Settings
    bus: CommandBus
    query_engine: AsyncEngine  # the read store, each statement on its own (no BEGIN/ROLLBACK)
    redis: RedisClient
    changes: ChangeFeed
    authenticator: Authenticator
    shared_reads: SingleFlight = field(default_factory=SingleFlight)


@dataclass
class Context:
    """What resolvers may use: the process's services and the current request."""

    services: Services
    request: Request | WebSocket
    response: Response | WebSocket
    principal: Principal | None = None  # who is asking; None: anonymous
    connection_params: dict[str, object] | None = None  # a WebSocket's connection_init payload
