"""The ASGI application: GraphQL over HTTP and WebSocket, health and readiness."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from functools import cached_property
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError
from strawberry.types.unset import UNSET, UnsetType

from app.config.logs import configure_logging
from app.config.settings import Role, Settings, load_settings
from app.graphql.context import Context
from app.pipeline.metrics import PipelineMetrics
from app.runtime.bootstrap import Api, open_api, readiness, require_migrated
from app.runtime.heap import freeze_startup_heap
from app.runtime.worker import pipeline_loops, running_loops
from app.schema import create_compiler, create_schema, limits_of
from app.security.principal import Principal
from app.security.tokens import InvalidCredentials
from app.subscriptions.broadcast import Broadcasts
from app.web.body_limit import BodySizeLimit, error_response
from app.web.compiled_queries import CompiledQueries
from app.web.graphql_view import StrictGraphQL
from app.web.http_protocol import CoalescingHttpToolsProtocol
from app.web.loopback_only import LoopbackOnly
from app.web.playground.pages import graphiql_response
from app.web.playground.pages import routes as playground_routes
from app.web.request_id import RequestIdMiddleware
from app.web.subscription_handlers import SharingGraphQLWSHandler, SharingTransportWSHandler
from app.web.websocket_sessions import SessionDeadline, WebSocketCap

log = logging.getLogger("app.web.asgi")

HTTP_KEEP_ALIVE_S = 75
"""How long an idle HTTP connection is kept open. Longer than the idle timeouts of the
clients and load balancers in front (httpx 5 s, AWS ALB and nginx 60 s): the server must not
be the one to close a connection a client is about to send on, or the client gets a reset
for a request it cannot tell was received."""


def server_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn serves this app: the same for `shop serve` and the tests' servers."""
    return {
        # Each response's head and body in one socket write (app/web/http_protocol.py).
        "http": CoalescingHttpToolsProtocol,
        "timeout_keep_alive": HTTP_KEEP_ALIVE_S,
        "timeout_graceful_shutdown": 10,
        "ws_max_size": settings.max_body_bytes,
        # WebSocket pings on both subprotocols; a client that does not answer one within
        # as long again is gone (a dropped network), and its subscriptions end.
        "ws_ping_interval": settings.ws_keepalive_s,
        "ws_ping_timeout": settings.ws_keepalive_s,
        # Compression keeps a zlib context per socket (tens of KiB, most of what a held
        # subscription costs) for messages of a few hundred bytes.
        "ws_per_message_deflate": False,
    }


class ShopGraphQL(StrictGraphQL):
    """Strawberry's ASGI view with the shop's typed context and its credentials check."""

    # Subscribers of one document, variables and audience share each result's execution and
    # serialization (app/subscriptions/broadcast.py).
    graphql_transport_ws_handler_class = SharingTransportWSHandler
    graphql_ws_handler_class = SharingGraphQLWSHandler

    def __init__(self, *args: Any, shared_subscriptions: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shared_subscriptions = shared_subscriptions

    @cached_property
    def broadcasts(self) -> Broadcasts:
        return Broadcasts(self.schema, self.encode_json, enabled=self.shared_subscriptions)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # Credentials are checked before the body is read: bad ones end the request.
            api: Api = scope["app"].state.api
            authorization = Headers(scope=scope).get("authorization")
            try:
                principal = await api.services.authenticator.principal(authorization)
            except InvalidCredentials as error:
                await unauthenticated(str(error))(scope, receive, send)
                return
            scope.setdefault("state", {})["principal"] = principal
        await super().__call__(scope, receive, send)

    async def run(  # type: ignore[override]
        self, request: Request | WebSocket, context: Any = UNSET, root_value: Any = UNSET
    ) -> Response | WebSocket:
        if not isinstance(request, WebSocket):
            return await super().run(request, context, root_value)
        # On both subprotocols (strawberry times connection_init out on graphql-transport-ws
        # only, and never looks at a token's expiry once the connection is acknowledged).
        deadline = SessionDeadline(self.connection_init_wait_timeout.total_seconds())
        request.state.deadline = deadline
        await deadline.guard(request, super().run(request, context, root_value))
        return request

    async def get_context(self, request: Request | WebSocket, response: object) -> Context:
        return Context(
            services=request.app.state.api.services,
            request=request,
            response=response,  # type: ignore[arg-type]
            principal=request.scope.get("state", {}).get("principal"),
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """A WebSocket's credentials: in the connection_init payload (`Authorization` or
        `authorization`: "Bearer <token>"), else the upgrade request's header."""
        params = context.connection_params or {}
        authorization = params.get("Authorization", params.get("authorization"))
        if authorization is None:
            authorization = context.request.headers.get("authorization")
        try:
            if authorization is not None and not isinstance(authorization, str):
                raise InvalidCredentials('Authorization must be a string: "Bearer <token>"')
            context.principal = await context.services.authenticator.principal(authorization)
        except InvalidCredentials as error:
            raise ConnectionRejectionError(
                {"message": str(error), "extensions": {"code": "UNAUTHENTICATED"}}
            ) from error
        deadline: SessionDeadline = context.request.state.deadline
        deadline.authenticated(context.principal)
        return None

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL from this package's own files, with the contract's operations as tabs."""
        return graphiql_response()


def unauthenticated(reason: str) -> Response:
    """401 for credentials that cannot be used (a missing token is not an error here: the
    fields that need one say so)."""
    return error_response(
        401, "UNAUTHENTICATED", reason, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )


async def caller_of(request: Request) -> Principal | None:
    """Who calls a plain HTTP endpoint, from its Authorization header; None: anonymous."""
    api: Api = request.app.state.api
    return await api.services.authenticator.principal(request.headers.get("authorization"))


async def healthz(request: Request) -> JSONResponse:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Readiness: 200 "ready" when both stores and Redis answer in time; 503 "unavailable"
    when a store does not. Without Redis commands still commit and queries still read (only
    the projections fall behind until it returns): 200 "degraded", the failing check named."""
    api: Api = request.app.state.api
    checks = await readiness(api.stores)
    failing = {name for name, result in checks.items() if result != "ok"}
    status = "ready" if not failing else "degraded" if failing == {"redis"} else "unavailable"
    try:
        caller = await caller_of(request)
    except InvalidCredentials:
        caller = None  # a probe is answered whatever it sends, only without the reasons
    if caller is None or not caller.is_admin:
        # The reasons are driver text naming hosts, ports and errnos: for admins only.
        checks = {name: "failing" if name in failing else "ok" for name in checks}
    body = {"status": status, "role": api.settings.role, **checks}
    return JSONResponse(body, status_code=503 if status == "unavailable" else 200)


async def metrics(request: Request) -> Response:
    """Prometheus metrics of this process, for admins: a bearer token (anyone when open)."""
    api: Api = request.app.state.api
    try:
        caller = await caller_of(request)
    except InvalidCredentials as error:
        return unauthenticated(str(error))
    if caller is None:
        return error_response(
            401, "UNAUTHENTICATED", "metrics need an admin's token", {"WWW-Authenticate": "Bearer"}
        )
    if not caller.is_admin:
        return error_response(403, "FORBIDDEN", "metrics are for admins")
    try:
        await request.app.state.pipeline_metrics.refresh()
    except Exception:  # a store being down must not hide the command metrics
        log.warning("pipeline metrics unavailable", exc_info=True)
    return Response(generate_latest(api.metrics), media_type=CONTENT_TYPE_LATEST)


def say_if_open(settings: Settings) -> None:
    """At every start: whether the API is open, everyone an admin (docs/security.md)."""
    if settings.open_by_default:
        log.warning(
            "no SHOP_JWT_SECRET or SHOP_JWT_JWKS_URL: the API is OPEN, everyone is an "
            "admin. For local use only (loopback addresses); see docs/security.md"
        )
    elif settings.open_access:
        log.error(
            "SHOP_ALLOW_OPEN_ACCESS=true and no SHOP_JWT_SECRET or SHOP_JWT_JWKS_URL: the API "
            "is OPEN to whoever reaches it, everyone is an admin; see docs/security.md"
        )


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the application for one process; stores are opened by its lifespan."""
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    limits = limits_of(settings)
    schema = create_schema(settings.role, limits)
    graphql = ShopGraphQL(
        schema,
        graphql_ide="graphiql" if settings.introspection else None,
        keep_alive=True,
        keep_alive_interval=settings.ws_keepalive_s,
        allowed_origins=settings.allowed_origins,
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        connection_init_wait_timeout=timedelta(seconds=settings.ws_connection_init_timeout_s),
        shared_subscriptions=settings.shared_subscriptions,
    )

    compiled = [
        Middleware(
            CompiledQueries,
            compiler=create_compiler(schema, settings.role, limits),
            settings=settings,
        )
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            api = await stack.enter_async_context(open_api(settings))
            await require_migrated(api.stores)
            app.state.api = api
            stores = api.stores
            app.state.pipeline_metrics = PipelineMetrics(
                api.metrics, stores.write_engine, stores.read_engine, stores.redis, settings
            )
            if settings.role is Role.ALL and not settings.pipeline_process:
                # Otherwise `shop serve` runs them in a child process (pipeline_process.py).
                await stack.enter_async_context(running_loops(pipeline_loops(stores)))
            log.info("serving role %s", settings.role.value)
            say_if_open(settings)
            if settings.gc_freeze:
                freeze_startup_heap()
            yield

    routes = [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        *playground_routes(),
    ]
    middleware = [
        # Outermost: the queries it answers need none of the others (it checks what they do).
        *(compiled if settings.compiled_queries else []),
        Middleware(RequestIdMiddleware),
        *([Middleware(LoopbackOnly)] if settings.open_by_default else []),
        Middleware(WebSocketCap, max_websockets=settings.max_websockets),
        Middleware(BodySizeLimit, max_bytes=settings.max_body_bytes),
    ]
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware)
