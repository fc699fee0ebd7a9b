"""Shared reads: callers woken by the same change share one read, never an older one."""

from __future__ import annotations

import asyncio
import time

from app.graphql.single_flight import SingleFlight


async def test_concurrent_callers_share_one_read() -> None:
    flights = SingleFlight()
    calls = 0
    gate = asyncio.Event()

    async def read() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return calls

    since = time.monotonic()
    callers = [asyncio.create_task(flights.read("k", since, read)) for _ in range(50)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*callers) == [1] * 50
    assert calls == 1
    assert len(flights) == 0


async def test_a_read_begun_before_the_callers_wake_is_not_shared() -> None:
    flights = SingleFlight()
    started: list[float] = []
    gate = asyncio.Event()

    async def read() -> float:
        mine = time.monotonic()
        started.append(mine)
        await gate.wait()
        return mine

    early = asyncio.create_task(flights.read("k", time.monotonic(), read))
    await asyncio.sleep(0.01)
    woken_at = time.monotonic()
    late = asyncio.create_task(flights.read("k", woken_at, read))
    await asyncio.sleep(0.01)
    gate.set()
    assert len(started) == 2
    assert await late >= woken_at
    assert await early < woken_at


async def test_a_caller_leaving_does_not_cancel_the_read_for_the_others() -> None:
    flights = SingleFlight()
    gate = asyncio.Event()

    async def read() -> str:
        await gate.wait()
        return "row"

    since = time.monotonic()
    leaving = asyncio.create_task(flights.read("k", since, read))
    staying = asyncio.create_task(flights.read("k", since, read))
    await asyncio.sleep(0)
    leaving.cancel()
    gate.set()
    assert await staying == "row"


async def test_a_failed_read_reaches_every_caller_and_is_not_kept() -> None:
    flights = SingleFlight()

    async def read() -> str:
        await asyncio.sleep(0)
        raise RuntimeError("store down")

    since = time.monotonic()
    results = await asyncio.gather(
        *(flights.read("k", since, read) for _ in range(3)), return_exceptions=True
    )
    assert [str(r) for r in results] == ["store down"] * 3
    assert len(flights) == 0


async def test_the_read_is_cancelled_when_every_caller_has_left() -> None:
    flights = SingleFlight()
    cancelled = asyncio.Event()

    async def read() -> str:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "row"

    since = time.monotonic()
    callers = [asyncio.create_task(flights.read("k", since, read)) for _ in range(3)]
    await asyncio.sleep(0.01)
    for caller in callers:
        caller.cancel()
    await asyncio.wait_for(cancelled.wait(), 5)
    await asyncio.sleep(0)
    assert len(flights) == 0
