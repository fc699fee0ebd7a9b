"""Concurrent identical reads share one query: a thousand subscribers of one order, woken by
the same change, cost one read of the read store, not a thousand."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class _Flight:
    started: float
    future: asyncio.Future[Any]
    waiters: int = 0


class SingleFlight:
    """Runs `read` for a key unless a read of that key began at or after `since`, in which
    case the caller shares that one's result. A read that began earlier may have missed the
    change the caller was woken for, so it is never shared with that caller."""

    def __init__(self) -> None:
        self._flights: dict[Hashable, _Flight] = {}

    async def read(self, key: Hashable, since: float, read: Callable[[], Awaitable[T]]) -> T:
        flight = self._flights.get(key)
        if flight is None or flight.started < since:
            flight = _Flight(time.monotonic(), asyncio.ensure_future(read()))
            self._flights[key] = flight
            flight.future.add_done_callback(functools.partial(self._land, key, flight))
        # Shielded: one caller going away does not cancel the read the others wait for; the
        # last one going away does, so a read never outlives everyone who wanted it (at
        # shutdown, say, it gives its connection back rather than being dropped pending).
        flight.waiters += 1
        try:
            result: T = await asyncio.shield(flight.future)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.future.done():
                flight.future.cancel()
        return result

    def _land(self, key: Hashable, flight: _Flight, _: object) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.future.cancelled():
            flight.future.exception()  # retrieved: each caller got it already

    def __len__(self) -> int:
        return len(self._flights)
