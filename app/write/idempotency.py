"""Idempotency by commandId: a repeated command returns its first result and writes nothing."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.write.commands import Command
from app.write.domain import rules
from app.write.domain.errors import ErrorCode, reject
from app.write.tables import idempotency

MAX_COMMAND_ID_LENGTH = 128


def input_hash(command: Command) -> str:
    """A digest of the command's input, without its commandId."""
    fields = dataclasses.asdict(command)
    fields.pop("command_id")
    text = json.dumps([type(command).__name__, fields], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class IdempotencyRecords:
    """The stored results of commands that carried a commandId."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def find(self, command: Command) -> dict[str, Any] | None:
        """The first result of this command, or None if its id is new.

        Takes a transaction-scoped lock on the id first, so two concurrent commands with one
        id run one after the other and the second sees the first's result.
        """
        command_id = _checked_id(command)
        lock_key = func.hashtextextended(command_id, 0)
        await self.connection.execute(select(func.pg_advisory_xact_lock(lock_key)))
        row = (
            await self.connection.execute(
                select(idempotency).where(idempotency.c.command_id == command_id)
            )
        ).one_or_none()
        if row is None:
            return None
        if (row.command_name, row.input_hash) != (type(command).__name__, input_hash(command)):
            raise reject(
                ErrorCode.COMMAND_ID_REUSED,
                "this commandId was used before with a different input",
                "commandId",
            )
        result: dict[str, Any] = row.result
        return result

    async def remember(self, command: Command, result: dict[str, Any], now: object) -> None:
        await self.connection.execute(
            insert(idempotency).values(
                command_id=command.command_id,
                command_name=type(command).__name__,
                input_hash=input_hash(command),
                result=result,
                created_at=now,
            )
        )


def _checked_id(command: Command) -> str:
    command_id = command.command_id
    assert command_id is not None
    if not 1 <= len(command_id) <= MAX_COMMAND_ID_LENGTH or not rules.storable(command_id):
        raise reject(
            ErrorCode.VALIDATION,
            f"commandId must be 1 to {MAX_COMMAND_ID_LENGTH} characters, "
            "without NUL characters or lone surrogates",
            "commandId",
        )
    return command_id
