"""A transaction that loses a race to another (a deadlock) is done again, not taken for a
poison batch: what a rebuild's swap meets beside live appliers whose prepared statements
lock the old tables one at a time."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from app.adapters.postgres import libpq_url, lost_a_race, retry_lost_races
from app.pipeline.consumer import is_transient
from app.runtime.bootstrap import Stores


async def test_a_deadlocked_transaction_is_done_again_and_lands_once(stores: Stores) -> None:
    engine = stores.read_engine
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE race_a (n int)"))
        await connection.execute(text("CREATE TABLE race_b (n int)"))
    holds_a, holds_b = asyncio.Event(), asyncio.Event()
    errors: list[BaseException] = []

    async def work() -> int:
        await holds_a.wait()
        try:
            async with engine.begin() as connection:
                await connection.execute(text("LOCK TABLE race_b"))
                holds_b.set()
                await connection.execute(text("LOCK TABLE race_a"))  # waits for the other
                await connection.execute(text("INSERT INTO race_a VALUES (1)"))
                return len(errors) + 1
        except Exception as error:
            errors.append(error)
            raise

    async def other() -> None:
        async with engine.begin() as connection:
            # The other side detects nothing: the deadlock is this side's to find.
            await connection.execute(text("SET LOCAL deadlock_timeout = '30s'"))
            await connection.execute(text("LOCK TABLE race_a"))
            holds_a.set()
            await holds_b.wait()
            await asyncio.sleep(0.2)  # `work` waits for race_a now
            await connection.execute(text("LOCK TABLE race_b"))

    attempts, _ = await asyncio.gather(retry_lost_races(work, "the test's work"), other())

    assert attempts == 2
    assert len(errors) == 1
    assert isinstance(errors[0], DBAPIError)
    assert "deadlock detected" in str(errors[0])
    assert lost_a_race(errors[0])
    assert is_transient(errors[0])
    async with engine.connect() as connection:
        assert await connection.scalar(text("SELECT count(*) FROM race_a")) == 1


async def test_a_deadlock_from_asyncpg_itself_is_transient(stores: Stores) -> None:
    """The one-statement group commit runs on a raw asyncpg connection."""
    assert stores.settings.read_database_url is not None
    url = libpq_url(stores.settings.read_database_url)
    first, second = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        await first.execute("CREATE TABLE race_c (n int); CREATE TABLE race_d (n int)")
        await first.execute("BEGIN; LOCK TABLE race_c")
        await second.execute("BEGIN; SET LOCAL deadlock_timeout = '30s'; LOCK TABLE race_d")
        waiting = asyncio.create_task(second.execute("LOCK TABLE race_c"))
        await asyncio.sleep(0.2)
        with pytest.raises(asyncpg.exceptions.DeadlockDetectedError) as caught:
            await first.execute("LOCK TABLE race_d")
        await first.execute("ROLLBACK")
        await waiting
        await second.execute("ROLLBACK")
    finally:
        await first.close()
        await second.close()
    assert lost_a_race(caught.value)
    assert is_transient(caught.value)


async def test_a_fault_of_the_work_itself_is_not_done_again(stores: Stores) -> None:
    calls = 0

    async def work() -> None:
        nonlocal calls
        calls += 1
        async with stores.read_engine.begin() as connection:
            await connection.execute(text("CREATE TABLE IF NOT EXISTS race_e (n int PRIMARY KEY)"))
            await connection.execute(text("INSERT INTO race_e VALUES (1), (1)"))

    with pytest.raises(IntegrityError) as caught:
        await retry_lost_races(work, "the test's work")

    assert calls == 1
    assert not lost_a_race(caught.value)
    assert not is_transient(caught.value)
