"""POST /graphql for operations the compiled path covers: no strawberry.

The outermost of the app's middleware. A JSON POST to /graphql whose document the compiler
covers is answered here: a query (app/queries/compiled.py) with PostgreSQL's JSON text as it
comes, a mutation (app/mutations/compiled.py) with its payload, each wrapped in
`{"data": ...}`, with its request id. Everything else goes on, body replayed, through the
other middleware to strawberry's view (the reference executor): other paths, methods and
media types, bodies without a Content-Length or over the limit, open-mode requests from
beyond loopback, extensions, documents the compiler does not cover, and every request that
ends in an error, which strawberry words. A failing read store goes there too, so its error
is the one users already know. The one exception: a mutation whose command was sent and then
failed (the store unreachable mid-command) is answered here, as strawberry would word it,
because running it again could run the command twice.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import asyncpg
from prometheus_client import Counter
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config.logs import current_request_id
from app.config.settings import Settings, is_loopback
from app.graphql.context import Context
from app.queries.compiled import Answered, Compiler, Fallback
from app.security.tokens import InvalidCredentials
from app.web.body_limit import replay
from app.web.request_id import HEADER, request_id_of

log = logging.getLogger("app.web.compiled_queries")

PATH = "/graphql"
STORE_FAILURE_PAUSE_S = 2.0
"""After the read store failed a compiled read, requests go straight to the reference executor
for this long: during an outage each waits once for a connection, not twice."""
_KEYS = frozenset({"query", "variables", "operationName"})
_STORE_FAILURES = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
_REQUEST_ID = HEADER.encode()


class CompiledQueries:
    """The compiled read path in front of the app; /metrics counts who answered."""

    def __init__(self, app: ASGIApp, compiler: Compiler, settings: Settings) -> None:
        self.app = app
        self.compiler = compiler
        self.max_body_bytes = settings.max_body_bytes
        self.loopback_only = settings.open_by_default
        self._store_failing_until = 0.0
        self._answered: Counter | None = None

    def _count(self, scope: Scope, executor: str) -> None:
        if self._answered is None:  # in the process's registry (its /metrics), on first use
            api = getattr(scope["app"].state, "api", None)
            if api is None:  # an app whose lifespan has not run (nothing to serve from)
                return
            self._answered = Counter(
                "shop_queries_answered",
                "GraphQL requests to /graphql by who answered: compiled or reference",
                ["executor"],
                registry=api.metrics,
            )
        self._answered.labels(executor).inc()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        headers = _Headers(scope)
        if not self._may_take(scope, headers):
            await self._reference(scope, receive, send)
            return
        body = await _body(receive)
        request_id = request_id_of(headers.request_id)
        token = current_request_id.set(request_id)
        try:
            answer = await self._compiled(scope, headers, body)
        finally:
            current_request_id.reset(token)
        if answer is None:
            await self._reference(scope, replay([body], None, receive), send)
            return
        self._count(scope, "compiled")
        response = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(answer)).encode()),
            (_REQUEST_ID, request_id.encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": response})
        await send({"type": "http.response.body", "body": answer})

    def _may_take(self, scope: Scope, headers: _Headers) -> bool:
        if scope["method"] != "POST" or not headers.json or headers.length is None:
            return False
        if not headers.length.isdigit() or int(headers.length) > self.max_body_bytes:
            return False  # the body limit answers
        if time.monotonic() < self._store_failing_until:
            return False
        server = scope.get("server")
        return not (self.loopback_only and server and not is_loopback(server[0]))

    async def _reference(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._count(scope, "reference")
        await self.app(scope, receive, send)

    async def _compiled(self, scope: Scope, headers: _Headers, body: bytes) -> bytes | None:
        """The response body, or None for the reference executor."""
        request = _request(body)
        if request is None:
            return None
        plan = self.compiler.plan(request["query"], request.get("operationName"))
        if plan is None:
            return None
        services = scope["app"].state.api.services
        try:
            principal = await services.authenticator.principal(headers.authorization)
        except InvalidCredentials:
            return None  # the view answers 401

        def context() -> Context:
            return Context(services, Request(scope), None, principal)  # type: ignore[arg-type]

        try:
            data = await plan.data(services, context, request.get("variables"), principal)
        except Answered as answered:  # a mutation's error: its command may have run
            return answered.body
        except Fallback:
            return None
        except _STORE_FAILURES:
            # The reference executor answers (UNAVAILABLE, if the store is down), this request
            # and, without trying here first, the others for a moment.
            log.debug("compiled read failed; the reference executor answers", exc_info=True)
            self._store_failing_until = time.monotonic() + STORE_FAILURE_PAUSE_S
            return None
        except Exception:
            # A fault of the compiled path must not cost the request: the reference answers.
            log.exception("compiled read path failed; the reference executor answers")
            return None
        return b'{"data":' + data.encode() + b"}"


class _Headers:
    """The request headers the compiled path looks at, in one pass."""

    __slots__ = ("authorization", "json", "length", "request_id")

    def __init__(self, scope: Scope) -> None:
        self.authorization: str | None = None
        self.json = False
        self.length: str | None = None
        self.request_id: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                media = value.split(b";")[0].strip().lower()
                self.json = media == b"application/json"
            elif name == b"content-length":
                self.length = value.decode("latin-1")
            elif name == b"authorization":
                self.authorization = value.decode("latin-1")
            elif name == _REQUEST_ID:
                self.request_id = value


async def _body(receive: Receive) -> bytes:
    chunks = []
    more = True
    while more:
        message: Message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def _request(body: bytes) -> dict[str, Any] | None:
    """The GraphQL request in a body, if it is one the compiled path may take."""
    try:
        request = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(request, dict) or not request.keys() <= _KEYS:
        return None
    variables, name = request.get("variables"), request.get("operationName")
    if not isinstance(request.get("query"), str):
        return None
    if not (variables is None or isinstance(variables, dict)):
        return None
    if not (name is None or isinstance(name, str)):
        return None
    return request
