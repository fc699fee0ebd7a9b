"""Shared reads: a worker's consumers of one projection read their partitions in one call.

Each (projection, partition) has its own consumer, and each consumer waited for new entries
in a blocking `XREADGROUP` of its own: a pass of the relay over eight partitions woke up to
eight readers per projection, each paying a Redis round trip for an entry or two, which
below full load was the biggest share of the pipeline's socket writes after the statements.
Here the consumers of one group (one projection) that ask for new entries in the same step
of the event loop ask in one `XREADGROUP … STREAMS p0 p1 … > > …`: it blocks until any of
those partitions has entries and returns what each has, so a pass costs a projection one
read whatever the number of partitions it touched. The consumers that find nothing in the
reply ask again, together, in the next one.

Nothing else changes: each consumer still reads through its own projection's group, under
its worker's consumer name, and processes and acknowledges its partition on its own, so an
entry read for a consumer that is stopping meanwhile stays pending under that name and is
read again (its backlog) or taken over, as a read-ahead's was. On a Redis Cluster the
partitions live in different slots, which one command cannot span: there each consumer
reads alone (`together=False`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.adapters.redis import RedisClient

Entry = tuple[str, dict[str, str]]
BLOCK_MS = 1000
"""How long one read waits for new entries before its consumers ask again."""


@dataclass(eq=False)
class _Call:
    """One XREADGROUP: the streams of the consumers that asked in one step, and their
    answers."""

    readers: dict[str, asyncio.Future[list[Entry]]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    sent: bool = False


class SharedReads:
    """The blocking reads of a worker's consumers, one call per group and step of the loop."""

    def __init__(self, redis: RedisClient, *, together: bool = True) -> None:
        self.redis = redis
        self.together = together
        self._waiting: dict[tuple[str, str, int], _Call] = {}  # not sent yet
        self._calls: set[asyncio.Task[None]] = set()

    async def read(
        self, group: str, consumer: str, stream: str, count: int, *, projection: str = ""
    ) -> list[Entry]:
        """The next entries of `stream` no consumer of `group` has read (at most `count`),
        waiting up to BLOCK_MS for some; [] if none came (or if they came on other streams
        of the same call: ask again).

        A read cancelled once its call is sent returns (raises) only when that call is
        over: whatever it read for this stream is then pending under `consumer`, where
        whoever holds the partition next takes it over. (The call is cancelled once every
        consumer in it is.)"""
        if not self.together:
            return _entries(await self._read({stream: ">"}, group, consumer, count), stream)
        key = (group, consumer, count)
        call = self._waiting.get(key)
        if call is None:
            call = self._waiting[key] = _Call()
            # In a task of its own: a consumer cancelled meanwhile does not take the others'
            # read with it. Named as the consumers are (app/pipeline/runner.py).
            call.task = asyncio.create_task(self._send(key, call), name=f"{projection}/read")
            self._calls.add(call.task)
            call.task.add_done_callback(self._calls.discard)
        if stream in call.readers:
            raise RuntimeError(f"{stream} is read twice at once for {group}")
        future: asyncio.Future[list[Entry]] = asyncio.get_running_loop().create_future()
        call.readers[stream] = future
        try:
            return await future
        except asyncio.CancelledError:
            if not call.sent:
                del call.readers[stream]  # nothing read for it
                raise
            assert call.task is not None
            if all(reader.done() for reader in call.readers.values()):
                call.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([call.task])
            raise

    async def _send(self, key: tuple[str, str, int], call: _Call) -> None:
        try:
            # One more step: the consumers whose read-ahead tasks start in this one join.
            await asyncio.sleep(0)
        except BaseException:
            for future in call.readers.values():
                future.cancel()
            raise
        finally:
            if self._waiting.get(key) is call:
                del self._waiting[key]
            call.sent = True
        readers = dict(call.readers)
        if not readers:
            return
        group, consumer, count = key
        try:
            reply = await self._read({stream: ">" for stream in readers}, group, consumer, count)
        except Exception as error:
            for future in readers.values():
                if not future.done():
                    future.set_exception(error)
            return
        except BaseException:  # cancelled: the worker stops, or every reader was cancelled
            for future in readers.values():
                future.cancel()
            raise
        for stream, future in readers.items():
            if not future.done():
                future.set_result(_entries(reply, stream))

    async def _read(
        self, streams: Mapping[str, str], group: str, consumer: str, count: int
    ) -> dict[str, list[Any]]:
        ask: dict[Any, Any] = dict(streams)
        reply: Any = await self.redis.xreadgroup(group, consumer, ask, count=count, block=BLOCK_MS)
        if not reply:
            return {}
        if isinstance(reply, dict):  # RESP3: stream -> [entries]
            return {name: value[0] if value and isinstance(value[0], list) else value
                    for name, value in reply.items()}  # fmt: skip
        return {name: entries for name, entries in reply}  # RESP2: [stream, entries] pairs


def _entries(reply: Mapping[str, list[Any]], stream: str) -> list[Entry]:
    # An entry trimmed away while pending comes back without fields: nothing to apply.
    return [(entry_id, fields) for entry_id, fields in reply.get(stream, []) if fields]
