"""Strawberry's two WebSocket protocols, with shared subscriptions (app/subscriptions/
broadcast.py): a shared result goes to each member's socket as its group's one payload text
in this socket's envelope. Every other operation runs as strawberry runs it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import suppress
from typing import Protocol, cast

from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.async_base_view import AsyncWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
    _OperationStreamClosed,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import CompleteMessage
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import CompleteMessage as WSComplete
from strawberry.subscriptions.protocols.graphql_ws.types import ErrorMessage
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.utils.aio import aclosing

from app.graphql.context import Context
from app.subscriptions.broadcast import Broadcasts, Frame, SharedResult


class SharesSubscriptions(Protocol):
    """The view: one set of broadcast groups for all its sockets."""

    broadcasts: Broadcasts

    def encode_json(self, data: object) -> str | bytes: ...


def _envelope(view: SharesSubscriptions, message: dict[str, object]) -> str:
    """The text of `message` up to its payload, which comes last: what strawberry would send,
    byte for byte, once the payload's text and a closing brace are added."""
    text = view.encode_json({**message, "payload": None})
    text = text.decode() if isinstance(text, bytes) else text
    assert text.endswith("null}")
    return text[: -len("null}")]


async def _send_text(websocket: AsyncWebSocketAdapter, text: str) -> None:
    try:
        await cast(ASGIWebSocketAdapter, websocket).ws.send_text(text)
    except WebSocketDisconnect as error:
        raise WebSocketDisconnected from error


class SharingTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws; shared results are sent as `next` messages of the operation."""

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        view = cast(SharesSubscriptions, self.view)
        frames = view.broadcasts.subscribe(
            operation.query, operation.variables, operation.operation_name, self.context
        )
        if frames is None:
            await super().run_operation(operation)
            return
        # As strawberry's run_operation, with the group's frames as the result stream.
        try:
            async with aclosing(frames):
                envelope = _envelope(view, {"id": operation.id, "type": "next"})
                await self._send_frames(operation, frames, envelope)
            await operation.send_operation_message(
                CompleteMessage(id=operation.id, type="complete")
            )
        except _OperationStreamClosed:
            return
        except Exception as error:
            await self.handle_task_exception(error)
            with suppress(Exception):
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)
            raise

    async def _send_frames(
        self, operation: Operation[Context, None], frames: AsyncIterator[Frame], envelope: str
    ) -> None:
        async for frame in frames:
            if isinstance(frame, PreExecutionError):  # only ever the first
                await self._handle_pre_execution_error(operation, frame)
                return
            if not operation.completed:
                await _send_text(self.websocket, f"{envelope}{frame.payload}}}")


class SharingGraphQLWSHandler(BaseGraphQLWSHandler[Context, None]):
    """graphql-ws; shared results are sent as `data` messages of the operation."""

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        # As strawberry's, with shared results for shareable subscriptions, and the result
        # stream closed however the operation ends (strawberry leaves it to the garbage
        # collector when a send fails, and the subscription's change-feed watch with it).
        view = cast(SharesSubscriptions, self.view)
        envelope = _envelope(view, {"type": "data", "id": operation_id})
        try:
            results: AsyncGenerator[Frame | ExecutionResult, None] | None
            results = view.broadcasts.subscribe(query, variables, operation_name, self.context)
            if results is None:
                results = await self.schema.subscribe(
                    query=query,
                    variable_values=variables,
                    operation_name=operation_name,
                    context_value=self.context,
                    root_value=self.root_value,
                )
            self.subscriptions[operation_id] = results
            async with aclosing(results):
                refused = await self._send_results(operation_id, results, envelope)
            if not refused:  # a refused operation ends with its error
                await self.send_message(WSComplete(type="complete", id=operation_id))
        except asyncio.CancelledError:
            await self.send_message(WSComplete(type="complete", id=operation_id))
        finally:
            self.subscriptions.pop(operation_id, None)
            self.tasks.pop(operation_id, None)

    async def _send_results(
        self,
        operation_id: str,
        results: AsyncIterator[Frame | ExecutionResult],
        envelope: str,
    ) -> bool:
        """Send the results until they end; True if the operation was refused instead."""
        async for result in results:
            if isinstance(result, PreExecutionError):  # only ever the first
                assert result.errors
                error = result.errors[0].formatted
                await self.send_message(ErrorMessage(type="error", id=operation_id, payload=error))
                return True
            if isinstance(result, SharedResult):
                await _send_text(self.websocket, f"{envelope}{result.payload}}}")
            else:
                await self.send_data_message(result, operation_id)
        return False
