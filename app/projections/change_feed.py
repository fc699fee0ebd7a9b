"""The change feed: one Redis subscription per API process to the projectors' announcements.

Projectors publish, after each commit, which projection changed which keys. The feed wakes
only the watchers whose keys changed. Announcements are hints, never the truth: a woken
watcher re-reads the read store. If the subscription breaks, every watcher is woken once it
is back, so an announcement lost meanwhile costs a re-read, never a missed update.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.events.streams import changes_channel

log = logging.getLogger("app.changes")

Match = Callable[[str, Iterable[str]], bool]


@dataclass(eq=False)
class Watch:
    """A watcher's doorbell: `changed` is set when a matching announcement arrives."""

    match: Match
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait(self, timeout_s: float | None) -> bool:
        """Wait for a ring (or the timeout) and reset the bell; True if it rang."""
        try:
            await asyncio.wait_for(self.changed.wait(), timeout_s)
        except TimeoutError:
            return False
        self.changed.clear()
        return True


class ChangeFeed:
    """Dispatches announcements to watches; run() holds the subscription."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.channel = changes_channel(prefix)
        self.watches: set[Watch] = set()
        self.connected = asyncio.Event()

    @contextlib.asynccontextmanager
    async def watch(self, match: Match) -> AsyncIterator[Watch]:
        """Register a watch for the duration of the block."""
        watch = Watch(match)
        self.watches.add(watch)
        try:
            yield watch
        finally:
            self.watches.discard(watch)

    def dispatch(self, projection: str, keys: list[str]) -> None:
        for watch in list(self.watches):
            if watch.match(projection, keys):
                watch.changed.set()

    def wake_all(self) -> None:
        for watch in list(self.watches):
            watch.changed.set()

    async def run(self) -> None:
        """Hold the subscription until cancelled, resubscribing after Redis trouble."""
        backoff, broken = 0.2, False
        while True:
            try:
                async with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.channel)
                    self.connected.set()
                    if broken:
                        log.warning("change feed resubscribed; waking every watcher")
                        broken, backoff = False, 0.2
                        self.wake_all()
                    await self._listen(pubsub)
            except (RedisError, OSError) as error:
                self.connected.clear()
                if not broken:
                    log.error("change feed lost its subscription: %s", error)
                    broken = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _listen(self, pubsub: object) -> None:
        async for message in pubsub.listen():  # type: ignore[attr-defined]
            if message.get("type") != "message":
                continue
            try:
                body = json.loads(message["data"])
                self.dispatch(str(body["projection"]), [str(k) for k in body["keys"]])
            except (ValueError, KeyError, TypeError):
                log.warning("ignoring a malformed announcement: %r", message.get("data"))
