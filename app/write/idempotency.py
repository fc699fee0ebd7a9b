"""Idempotency by commandId: a repeated command returns its first result and writes nothing."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from app.events.text import storable
from app.write import write_set
from app.write.commands import Command
from app.write.domain.errors import ErrorCode, reject

MAX_COMMAND_ID_LENGTH = 128
ANY_CALLER = "*"  # the caller of records from before they were kept per caller: matches all


def input_hash(command: Command) -> str:
    """A digest of the command's input, without its commandId."""
    fields = dataclasses.asdict(command)
    fields.pop("command_id")
    # UUIDs are written as their canonical text, as the ids were before commands parsed them.
    text = json.dumps([type(command).__name__, fields], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Remembered:
    """What is kept of an accepted command that carried a commandId."""

    command_name: str
    input_hash: str
    result: dict[str, Any]

    @classmethod
    def of(cls, command: Command, result: dict[str, Any]) -> Remembered:
        return cls(type(command).__name__, input_hash(command), result)

    def replay(self, command: Command) -> dict[str, Any]:
        """The first result again, if the command repeats the one remembered; else Rejected."""
        if (self.command_name, self.input_hash) != (type(command).__name__, input_hash(command)):
            raise reject(
                ErrorCode.COMMAND_ID_REUSED,
                "this commandId was used before with a different input",
                "commandId",
            )
        return self.result


def checked_id(command: Command) -> str:
    """The command's commandId, or Rejected if it cannot be one."""
    command_id = command.command_id
    assert command_id is not None
    if not 1 <= len(command_id) <= MAX_COMMAND_ID_LENGTH or not storable(command_id):
        raise reject(
            ErrorCode.VALIDATION,
            f"commandId must be 1 to {MAX_COMMAND_ID_LENGTH} characters, "
            "without NUL characters or lone surrogates",
            "commandId",
        )
    return command_id


class IdempotencyRecords:
    """The stored results of commands that carried a commandId.

    A new record goes in with the command's writes, in its one write statement, and only if
    no record of that (caller, id) is there: two concurrent commands of one caller with one
    id cannot both commit. The one that finds a record there writes nothing and runs again
    (app/write/write_set.py), and then finds the other's result."""

    def __init__(self, connection: asyncpg.Connection, *, locking: bool = True) -> None:
        self.connection = connection
        self.locking = locking
        self.new: list[tuple[str, str, str, str, str, datetime]] = []

    async def find(self, caller: str, command: Command) -> dict[str, Any] | None:
        """The first result of this caller's command, or None if its id is new to the caller.
        When locking, takes a transaction-scoped lock on (caller, id) first, so two concurrent
        commands of one caller with one id run one after the other and the second sees the
        first's result (rather than doing the work and finding out at the write).
        """
        command_id = checked_id(command)
        if self.locking:
            # Equal pairs share a lock; pairs whose hashes collide merely wait for each other.
            # The lock is a statement of its own: the read after it must see what the holder
            # committed (a statement sees what was committed when it began).
            await self.connection.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, hashtext($2)))",
                command_id, caller,
            )  # fmt: skip
        row = await self.connection.fetchrow(
            "SELECT command_name, input_hash, result::text FROM idempotency "
            "WHERE command_id = $1 AND caller IN ($2, $3) "
            "ORDER BY caller = $3 LIMIT 1",  # the caller's own record first
            command_id, caller, ANY_CALLER,
        )  # fmt: skip
        if row is None:
            return None
        name, digest, result = row
        return Remembered(name, digest, json.loads(result)).replay(command)

    def remember(
        self, caller: str, command: Command, result: dict[str, Any], now: datetime
    ) -> None:
        remembered = Remembered.of(command, result)
        self.new.append((
            caller, checked_id(command), remembered.command_name, remembered.input_hash,
            json.dumps(remembered.result), now,
        ))  # fmt: skip

    def changes(self) -> write_set.Columns:
        """The records to add, for the command's write statement."""
        return write_set.columns(write_set.RECORDS, self.new)
