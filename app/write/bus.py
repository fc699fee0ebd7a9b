"""The command bus: every command goes through the same middleware to its one handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any
from uuid import UUID

from app.events.consistency import encode_token
from app.security.principal import Principal
from app.write.commands import Command
from app.write.domain.aggregate import Aggregate
from app.write.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class Accepted:
    """A command that committed: the aggregate it concerned, its version, and a token."""

    aggregate_id: UUID
    version: int
    consistency_token: str

    def to_json(self) -> dict[str, Any]:
        return {"id": str(self.aggregate_id), "v": self.version, "t": self.consistency_token}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Accepted:
        return cls(UUID(data["id"]), int(data["v"]), str(data["t"]))


@dataclass
class Dispatch:
    """One command on its way through the middleware."""

    command: Command
    request_id: str
    principal: Principal | None = None
    uow: UnitOfWork | None = None

    @property
    def name(self) -> str:
        return type(self.command).__name__


Next = Callable[[Dispatch], Awaitable[Accepted]]
Middleware = Callable[[Dispatch, Next], Awaitable[Accepted]]
Handler = Callable[[Any, UnitOfWork], Awaitable[Aggregate]]


class CommandBus:
    """Runs a command through the middleware, outermost first, then its handler."""

    def __init__(
        self, handlers: Mapping[type[Command], Handler], middleware: Sequence[Middleware]
    ) -> None:
        self._handlers = dict(handlers)
        self._chain: Next = self._handle
        for layer in reversed(middleware):
            self._chain = partial(layer, next=self._chain)  # type: ignore[call-arg]

    async def dispatch(
        self, command: Command, *, request_id: str = "-", principal: Principal | None = None
    ) -> Accepted:
        """Run the command; raises Rejected (nothing written) when a rule refuses it."""
        return await self._chain(Dispatch(command, request_id, principal))

    async def _handle(self, dispatch: Dispatch) -> Accepted:
        uow = dispatch.uow
        assert uow is not None, "the transaction middleware must run before the handler"
        aggregate = await self._handlers[type(dispatch.command)](dispatch.command, uow)
        return Accepted(aggregate.id, aggregate.version, encode_token(uow.produced()))
