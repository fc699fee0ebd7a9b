"""Secret keys the service makes for itself and keeps in the write store, so that every
process of a deployment uses the same one."""

from __future__ import annotations

import secrets

from asyncpg.exceptions import UndefinedTableError
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.migrations import SchemaBehindError
from app.adapters.postgres import driver_error

KEY_BYTES = 32


async def service_key(engine: AsyncEngine, name: str) -> bytes:
    """The key called `name`, made (random, KEY_BYTES long) by whichever process asks first."""
    async with engine.begin() as connection:
        try:
            # Two first starts at once: the second INSERT waits for the first to commit and
            # then does nothing; its SELECT (a new snapshot) reads the key the first made.
            await connection.execute(
                text(
                    "INSERT INTO service_keys (name, key) VALUES (:name, :key) "
                    "ON CONFLICT (name) DO NOTHING"
                ),
                {"name": name, "key": secrets.token_bytes(KEY_BYTES)},
            )
        except ProgrammingError as error:
            if isinstance(driver_error(error), UndefinedTableError):
                raise SchemaBehindError(
                    "the write database has no service_keys table: run `shop migrate` first"
                ) from error
            raise
        key = await connection.scalar(
            text("SELECT key FROM service_keys WHERE name = :name"), {"name": name}
        )
    return bytes(key)
