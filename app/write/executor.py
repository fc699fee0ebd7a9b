"""The command executor: one command from its transaction to its commit, step by step."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from asyncpg.exceptions import DeadlockDetectedError, SerializationError

from app.events.consistency_token import (
    AggregateVersion,
    TokenKey,
    dump_versions,
    encode_token,
    load_versions,
)
from app.security.principal import Principal, caller_identity
from app.write.commands import Command
from app.write.domain.errors import Rejected
from app.write.handlers import Handlers
from app.write.ports import UnitOfWork

log = logging.getLogger("app.commands")

Policy = Callable[[Principal | None, Command, UnitOfWork], Awaitable[None]]


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, locking: bool) -> UnitOfWork:
        """A unit of work that locks what the command reads to change, or one that does not
        and whose commit fails (serialization_failure) if any of it changed meanwhile."""
        ...


ATTEMPTS = 3
_TRANSIENT = (DeadlockDetectedError, SerializationError)


class _Unsure(Exception):
    """A refusal decided on remembered rows, which may be stale."""


@dataclass(frozen=True)
class Accepted:
    """A command that committed: the aggregate it concerned, its version, and a consistency
    token for the caller."""

    aggregate_id: UUID
    version: int
    consistency_token: str


@dataclass(frozen=True)
class Outcome:
    """What a committed command produced, whoever asks: kept in its idempotency record."""

    aggregate_id: UUID
    version: int
    produced: tuple[AggregateVersion, ...]

    def to_json(self) -> dict[str, Any]:
        return {"id": str(self.aggregate_id), "v": self.version, "a": dump_versions(self.produced)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        # Records made before tokens were signed hold an unsigned token ("t"), no versions:
        # their replays get a token that names nothing, so waits on it end at once.
        return cls(UUID(data["id"]), int(data["v"]), load_versions(data.get("a", [])))


class CommandExecutor:
    """Runs each command in its own unit of work: authorize, replay or handle, remember, commit."""

    def __init__(
        self,
        *,
        unit_of_work: UnitOfWorkFactory,
        handlers: Handlers,
        policy: Policy,
        token_key: TokenKey,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._handlers = handlers
        self._policy = policy
        self._token_key = token_key

    async def execute(self, command: Command, principal: Principal | None) -> Accepted:
        """Run the command for the principal; raises Rejected, having written nothing.

        The first attempt reads without locks and commits only if nothing it read changed
        meanwhile: most commands touch rows no other command is writing, and so pay neither
        the lock nor the round trips of a transaction held open. One that loses that race
        runs again under row locks, which it then cannot lose."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await self._attempt(command, principal, locking=attempt > 1)
            except _Unsure:
                continue  # refused on what the process remembered: decide on the store
            except _TRANSIENT as error:
                # Row locks are always taken in one order, so deadlocks should not happen; if
                # the server still reports one (or a serialization failure), run it all again.
                if attempt == ATTEMPTS:
                    raise
                if attempt > 1:
                    log.warning("%s: %s, retrying", type(command).__name__, type(error).__name__)
                    await asyncio.sleep(0.01 * attempt)
        raise AssertionError("unreachable")

    async def _attempt(
        self, command: Command, principal: Principal | None, *, locking: bool
    ) -> Accepted:
        caller = caller_identity(principal)
        async with self._unit_of_work(locking=locking) as uow:
            # Authorization comes before idempotency: a refused caller learns nothing, not
            # even the earlier result of the same commandId.
            await self._policy(principal, command, uow)
            idempotent = command.command_id is not None
            earlier = await uow.idempotency.find(caller, command) if idempotent else None
            if earlier is not None:
                outcome = Outcome.from_json(earlier)
            else:
                try:
                    aggregate = await self._handlers.handle(command, uow)
                except Rejected:
                    if uow.remembered and not locking:
                        raise _Unsure from None
                    raise
                outcome = Outcome(aggregate.id, aggregate.version, tuple(uow.produced()))
                if idempotent:
                    uow.idempotency.remember(caller, command, outcome.to_json(), uow.clock())
            await uow.commit()
        # Signed for the caller, on a replay too: it is their own commandId, so a replay gets
        # the token they got the first time (or, for a record from before records were kept
        # per caller, a token for whoever passed the policy for this very command).
        token = encode_token(outcome.produced, self._token_key, caller)
        return Accepted(outcome.aggregate_id, outcome.version, token)
