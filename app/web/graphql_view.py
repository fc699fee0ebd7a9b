"""Strawberry's ASGI view, strict about what a GraphQL request over HTTP is.

Strawberry answers a body that is JSON but not an object, is not UTF-8, or nests deeper than
Python's recursion limit with a 500, runs a subscription sent over plain HTTP as if it were a
query (and fails inside), and refuses other bad requests in plain text. Here each of those is
a 4xx in the shape GraphQL clients read: `{"errors": [{"message", "extensions": {"code"}}]}`.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.http import GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET

from app.graphql.context import Context
from app.web.body_limit import error_response

_JSON_WHITESPACE = b" \t\r\n"


class UnreadableJSON(json.JSONDecodeError):
    """Bytes that are not UTF-8, or JSON nested too deep to read: refused like bad JSON."""


class StrictGraphQL(GraphQL[Context, None]):
    """GraphQL over HTTP and WebSocket that answers every bad request with a client error."""

    def decode_json(self, data: str | bytes) -> object:
        # Also decodes WebSocket messages: strawberry closes the socket on a JSONDecodeError.
        try:
            return json.loads(data)
        except UnicodeDecodeError as error:
            raise UnreadableJSON("the body is not UTF-8", "", error.start) from error
        except RecursionError as error:
            raise UnreadableJSON("the JSON is nested too deep", "", 0) from error

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        content_type, _ = parse_content_type(request.content_type or "")
        if request.method == "POST" and "application/json" in content_type:
            # Strawberry reads fields off whatever the JSON is; a number or a string would
            # fail there. An object starts with "{" (a list, a batch, with "[").
            start = (await request.get_body()).lstrip(_JSON_WHITESPACE)[:1]
            if start not in (b"{", b"["):
                raise HTTPException(
                    400, 'the request body must be a JSON object: {"query": "...", ...}'
                )
        return await super().parse_http_body(request)

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        # Strawberry lets GET and POST carry subscriptions for HTTP streaming transports this
        # service does not offer; subscriptions go over the WebSocket.
        method = request_adapter.method
        allowed = OperationType.from_http(method) - {OperationType.SUBSCRIPTION}
        if method == "GET" and not self.allow_queries_via_get:
            allowed -= {OperationType.QUERY}
        try:
            return await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except CannotGetOperationTypeError as error:
            raise HTTPException(400, error.as_http_error_reason()) from error
        except InvalidOperationTypeError as error:
            reason = error.as_http_error_reason(method)
            if error.operation_type is OperationType.SUBSCRIPTION:
                reason += "; subscribe over a WebSocket at this same path"
            raise HTTPException(400, reason) from error
        except MissingQueryError as error:
            raise HTTPException(400, "No GraphQL query found in the request") from error

    async def run(  # type: ignore[override]
        self, request: Request | WebSocket, context: Any = UNSET, root_value: Any = UNSET
    ) -> Response | WebSocket:
        try:
            return await super().run(request, context, root_value)
        except HTTPException as error:
            code = HTTPStatus(error.status_code).name
            return error_response(error.status_code, code, error.reason)
