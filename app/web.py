"""The ASGI application: GraphQL over HTTP and WebSocket, health and readiness."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from app.bootstrap import open_services, readiness, require_migrated
from app.context import Context
from app.logs import configure_logging
from app.playground.pages import graphiql_response
from app.playground.pages import routes as playground_routes
from app.projections.metrics import PipelineMetrics
from app.request_id import RequestIdMiddleware
from app.schema import create_schema
from app.services import Services
from app.settings import Role, Settings, load_settings
from app.worker import pipeline_loops, running_loops

log = logging.getLogger("app.web")


class ShopGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI view with the shop's typed context."""

    async def get_context(self, request: Request | WebSocket, response: object) -> Context:
        return Context(
            services=request.app.state.services,
            request=request,
            response=response,  # type: ignore[arg-type]
            request_id=request.scope.get("state", {}).get("request_id", "-"),
        )

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL from this package's own files, with the contract's operations as tabs."""
        return graphiql_response()


async def healthz(request: Request) -> JSONResponse:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Readiness: both stores and Redis answer in time."""
    services: Services = request.app.state.services
    checks = await readiness(services)
    ready = all(result == "ok" for result in checks.values())
    body = {"status": "ready" if ready else "unavailable", "role": services.settings.role, **checks}
    return JSONResponse(body, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    """Prometheus metrics of this process."""
    services: Services = request.app.state.services
    try:
        await request.app.state.pipeline_metrics.refresh(services)
    except Exception:  # a store being down must not hide the command metrics
        log.warning("pipeline metrics unavailable", exc_info=True)
    return Response(generate_latest(services.metrics), media_type=CONTENT_TYPE_LATEST)


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the application for one process; stores are opened by its lifespan."""
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    graphql = ShopGraphQL(
        create_schema(settings.role),
        keep_alive=True,
        keep_alive_interval=15,
        allowed_origins=settings.allowed_origins,
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            services = await stack.enter_async_context(open_services(settings))
            await require_migrated(services)
            app.state.services = services
            app.state.pipeline_metrics = PipelineMetrics(services.metrics)
            if settings.role is Role.ALL:
                await stack.enter_async_context(running_loops(services, pipeline_loops()))
            log.info("serving role %s", settings.role.value)
            yield

    routes = [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", graphql),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        *playground_routes(),
    ]
    return Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(RequestIdMiddleware)])
