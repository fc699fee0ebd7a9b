"""The typed GraphQL context (``Info[Context, None]``), made once per request or socket."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from app.adapters.redis import RedisClient
from app.config.settings import Settings
from app.events.consistency_token import TokenKey
from app.graphql.single_flight import SingleFlight
from app.pipeline.catch_up import CatchUpWaiter, WaitSlots
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
    read_pool: asyncpg.Pool  # the read store for the compiled read path (app/queries/compiled.py)
    redis: RedisClient
    changes: ChangeFeed
    catch_up: CatchUpWaiter  # every wait for projections to catch up
    authenticator: Authenticator
    token_key: TokenKey  # signs and checks consistency tokens
    shared_reads: SingleFlight = field(default_factory=SingleFlight)


@dataclass
class Context:
    """What resolvers may use: the process's services and the current request."""

    services: Services
    request: Request | WebSocket
    response: Response | WebSocket
    principal: Principal | None = None  # who is asking; None: anonymous
    connection_params: dict[str, object] | None = None  # a WebSocket's connection_init payload
    waits: WaitSlots = field(init=False)  # its waits for projections in progress

    def __post_init__(self) -> None:
        holder = "this connection" if isinstance(self.request, WebSocket) else "this request"
        self.waits = WaitSlots(self.services.settings.max_waits_per_request, holder)
