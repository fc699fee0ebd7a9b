"""Broadcast groups: subscribers of the same document, variables and audience share one
result stream. Each change is read, executed and serialized once for the group, and every
member's socket gets the same payload text.

Only fields whose every result is the whole current state of one thing are shared
(SHARED_FIELDS): a subscriber who joins late, or falls behind, needs only the newest result.
A member holds at most one result not yet sent, the newest, so a slow socket never holds up
the others nor makes a queue grow.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from graphql import FieldNode, GraphQLError, OperationDefinitionNode, OperationType, parse
from strawberry.schema import BaseSchema
from strawberry.schema.schema import SubscriptionResult
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.utils.aio import aclosing

from app.graphql.context import Context
from app.security.principal import Principal, caller_identity

log = logging.getLogger("app.subscriptions")

SHARED_FIELDS = frozenset({"orderUpdated"})
"""Subscription fields whose results depend only on their arguments and the caller's
audience, each result the whole state of one thing (the generator never emits a version
after a newer one)."""

# Longer documents run on their own (correct, only not shared): what is remembered stays small.
_SHARED_DOCUMENT_MAX_CHARS = 8192
_PARSE_MAX_TOKENS = 2000  # strawberry applies the configured limit, whatever this says
_REMEMBERED_DOCUMENTS = 512


@dataclass(frozen=True, slots=True)
class SharedResult:
    """One result of a group, serialized once: the `payload` of a `next` or `data` message."""

    payload: str


Frame = SharedResult | PreExecutionError


def audience(principal: Principal | None) -> str:
    """Whose results a group's are. A shared field shows a caller what it shows everyone of
    the same audience: admins see every order, a customer their own, anonymous callers none."""
    if principal is None:
        return ""
    return "admin" if principal.is_admin else caller_identity(principal)


class Member:
    """One subscriber: the group's newest result it has not sent yet, and whether the group
    has ended."""

    __slots__ = ("_ended", "_newest", "_waiter")

    def __init__(self) -> None:
        self._newest: Frame | None = None
        self._ended = False
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, frame: Frame) -> None:
        self._newest = frame  # replaces one not sent yet: the newest state is what counts
        self._wake()

    def end(self) -> None:
        self._ended = True
        self._wake()

    async def take(self) -> Frame | None:
        """The newest result not sent yet, waiting for one; None once the group has ended."""
        while self._newest is None and not self._ended:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        frame, self._newest = self._newest, None
        return frame

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class Group:
    """One subscription's result stream, run once for all its members."""

    def __init__(self, broadcasts: Broadcasts, key: tuple[str, ...]) -> None:
        self.broadcasts = broadcasts
        self.key = key
        self.members: set[Member] = set()
        self.newest: SharedResult | None = None
        self.task: asyncio.Task[None] | None = None

    def admit(self) -> Member:
        member = Member()
        self.members.add(member)
        if self.newest is not None:  # a late subscriber starts from the state as it is now
            member.offer(self.newest)
        return member

    def leave(self, member: Member) -> None:
        self.members.discard(member)
        if not self.members:
            self.broadcasts.close(self)

    async def run(self, subscribe: Callable[[], Awaitable[SubscriptionResult]]) -> None:
        try:
            results = await subscribe()
            async with aclosing(results):
                async for result in results:
                    frame = self.broadcasts.frame_of(result)
                    if isinstance(frame, SharedResult) and not result.errors:
                        self.newest = frame
                    else:  # errors end a subscription: whoever subscribes next starts afresh
                        self.broadcasts.forget(self)
                    for member in self.members:
                        member.offer(frame)
        except Exception:
            log.exception("a shared subscription failed; its subscribers are completed")
        finally:
            self.broadcasts.forget(self)
            for member in self.members:
                member.end()


class Broadcasts:
    """The groups of one process's WebSocket subscriptions, by document, operation name,
    variables and audience."""

    def __init__(
        self,
        schema: BaseSchema,
        encode_json: Callable[[object], str | bytes],
        *,
        enabled: bool = True,
    ) -> None:
        self.schema = schema
        self.encode_json = encode_json
        self.enabled = enabled  # False: every subscription runs on its own
        self.groups: dict[tuple[str, ...], Group] = {}
        self._shared_documents: OrderedDict[tuple[str, str | None], bool] = OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    def subscribe(
        self,
        query: object,
        variables: object,
        operation_name: object,
        context: Context,
        root_value: object = None,
    ) -> AsyncGenerator[Frame, None] | None:
        """The results of a shareable subscription as its group's frames (joining or starting
        the group once iterated); None for any other operation, which runs on its own."""
        if not self.enabled:
            return None
        if not isinstance(query, str) or not isinstance(operation_name, str | None):
            return None
        if not isinstance(variables, dict | None) or not self.shared(query, operation_name):
            return None
        key = (
            query,
            operation_name or "",
            json.dumps(variables or {}, sort_keys=True, separators=(",", ":")),
            audience(context.principal),
        )
        return self._frames(key, query, variables, operation_name, context, root_value)

    async def _frames(
        self,
        key: tuple[str, ...],
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Context,
        root_value: object,
    ) -> AsyncGenerator[Frame, None]:
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(self, key)
            # The first member's context serves the group: its principal is the audience's.
            subscribe = functools.partial(
                self.schema.subscribe,
                query,
                variable_values=variables,
                context_value=context,
                root_value=root_value,
                operation_name=operation_name,
            )
            group.task = asyncio.create_task(group.run(subscribe))
        member = group.admit()
        try:
            while (frame := await member.take()) is not None:
                yield frame
        finally:
            group.leave(member)

    def frame_of(self, result: ExecutionResult) -> Frame:
        """What members are sent for a result: the payload strawberry would send, as text."""
        if isinstance(result, PreExecutionError):
            return result
        payload: dict[str, object] = {"data": result.data}
        if result.errors:
            payload["errors"] = [error.formatted for error in result.errors]
        if result.extensions:
            payload["extensions"] = result.extensions
        text = self.encode_json(payload)
        return SharedResult(text.decode() if isinstance(text, bytes) else text)

    def forget(self, group: Group) -> None:
        """No one joins this group any more (it is ending)."""
        if self.groups.get(group.key) is group:
            del self.groups[group.key]

    def close(self, group: Group) -> None:
        """End a group its last member left."""
        self.forget(group)
        if group.task is not None and not group.task.done():
            group.task.cancel()
            # Held until it has ended: the loop keeps only weak references to tasks.
            self._closing.add(group.task)
            group.task.add_done_callback(self._closing.discard)

    def shared(self, query: str, operation_name: str | None) -> bool:
        """Whether the operation is a subscription to one field of SHARED_FIELDS."""
        if len(query) > _SHARED_DOCUMENT_MAX_CHARS or not any(n in query for n in SHARED_FIELDS):
            return False
        remembered = self._shared_documents.get((query, operation_name))
        if remembered is None:
            remembered = _one_shared_field(query, operation_name)
            self._shared_documents[(query, operation_name)] = remembered
            if len(self._shared_documents) > _REMEMBERED_DOCUMENTS:
                self._shared_documents.popitem(last=False)
        return remembered


def _one_shared_field(query: str, operation_name: str | None) -> bool:
    try:
        document = parse(query, no_location=True, max_tokens=_PARSE_MAX_TOKENS)
    except GraphQLError:
        return False  # strawberry says what is wrong with it
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1 or operations[0].operation is not OperationType.SUBSCRIPTION:
        return False
    selections = operations[0].selection_set.selections
    return (
        len(selections) == 1
        and isinstance(selections[0], FieldNode)
        and selections[0].name.value in SHARED_FIELDS
    )
