"""The command executor: one command from its transaction to its commit, step by step."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from asyncpg.exceptions import DeadlockDetectedError, SerializationError
from sqlalchemy.exc import DBAPIError

from app.adapters.postgres import driver_error
from app.events.consistency_token import encode_token
from app.security.principal import Principal
from app.write.commands import Command
from app.write.handlers import Handlers
from app.write.ports import UnitOfWork

log = logging.getLogger("app.commands")

Policy = Callable[[Principal | None, Command, UnitOfWork], Awaitable[None]]
UnitOfWorkFactory = Callable[[], UnitOfWork]

ATTEMPTS = 3
_TRANSIENT = (DeadlockDetectedError, SerializationError)


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


class CommandExecutor:
    """Runs each command in its own unit of work: authorize, replay or handle, remember, commit."""

    def __init__(
        self, *, unit_of_work: UnitOfWorkFactory, handlers: Handlers, policy: Policy
    ) -> None:
        self._unit_of_work = unit_of_work
        self._handlers = handlers
        self._policy = policy

    async def execute(self, command: Command, principal: Principal | None) -> Accepted:
        """Run the command for the principal; raises Rejected, having written nothing."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await self._attempt(command, principal)
            except DBAPIError as error:
                # Row locks are always taken in one order, so deadlocks should not happen; if
                # the server still reports one (or a serialization failure), run it all again.
                cause = driver_error(error)
                if attempt == ATTEMPTS or not isinstance(cause, _TRANSIENT):
                    raise
                log.warning("%s: %s, retrying", type(command).__name__, type(cause).__name__)
                await asyncio.sleep(0.01 * attempt)
        raise AssertionError("unreachable")

    async def _attempt(self, command: Command, principal: Principal | None) -> Accepted:
        async with self._unit_of_work() as uow:
            # Authorization comes before idempotency: a refused caller learns nothing, not
            # even the earlier result of the same commandId.
            await self._policy(principal, command, uow)
            idempotent = command.command_id is not None
            earlier = await uow.idempotency.find(command) if idempotent else None
            if earlier is not None:
                accepted = Accepted.from_json(earlier)
            else:
                aggregate = await self._handlers.handle(command, uow)
                token = encode_token(uow.produced())
                accepted = Accepted(aggregate.id, aggregate.version, token)
                if idempotent:
                    await uow.idempotency.remember(command, accepted.to_json(), uow.clock())
            await uow.commit()
            return accepted
