"""The change feed: one Redis subscription per API process to the projectors' announcements.

Projectors publish, after each commit, which projection changed which keys. The feed wakes
only the watches for those keys (looked up by key, so thousands of watches cost nothing per
announcement that does not concern them). Announcements are hints, never the truth: a woken
watcher re-reads the read store. If the subscription breaks, every watch is woken once it
is back, marked `resync`, so an announcement lost meanwhile costs a re-read, never a missed
update.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from app.adapters.redis import RedisClient
from app.events.streams import changes_channel
from app.pipeline.cancellation import reraise_if_cancelling
from app.projections.change_keys import ChangeKey, parse
from app.projections.names import ProjectionName

log = logging.getLogger("app.changes")


@dataclass(eq=False)
class Watch:
    """A watcher's doorbell, and the keys that changed since it last looked."""

    projections: frozenset[ProjectionName]
    keys: frozenset[ChangeKey] | None  # None: every key of those projections
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    pending: set[ChangeKey] = field(default_factory=set)
    resync: bool = False
    # A read of the read store begun at or after this moment reflects every change this
    # watch has been rung for (it was made, or last rung, then).
    rung_at: float = field(default_factory=time.monotonic)

    async def wait(self, timeout_s: float | None) -> bool:
        """Wait for a ring (or the timeout) and reset the bell; True if it rang."""
        try:  # asyncio.timeout, not wait_for: no task of its own per wait (Python 3.11)
            async with asyncio.timeout(timeout_s):
                await self.changed.wait()
        except TimeoutError:
            return False
        self.changed.clear()
        return True

    def take(self) -> tuple[set[ChangeKey], bool]:
        """The keys changed since the last take, and whether a resync is due; then forget."""
        keys, resync = self.pending, self.resync
        self.pending, self.resync = set(), False
        return keys, resync

    def ring(self, keys: Iterable[ChangeKey]) -> None:
        self.pending.update(keys)
        self.rung_at = time.monotonic()
        self.changed.set()


class ChangeFeed:
    """Dispatches announcements to watches; run() holds the subscription."""

    def __init__(self, redis: RedisClient, prefix: str) -> None:
        self.redis = redis
        self.channel = changes_channel(prefix)
        self.by_key: defaultdict[tuple[str, ChangeKey], set[Watch]] = defaultdict(set)
        self.by_projection: defaultdict[str, set[Watch]] = defaultdict(set)
        self.connected = asyncio.Event()

    @contextlib.asynccontextmanager
    async def watch(
        self, projections: Iterable[ProjectionName], keys: Iterable[ChangeKey] | None = None
    ) -> AsyncIterator[Watch]:
        """Watch some keys (or all) of some projections for the duration of the block."""
        watch = Watch(frozenset(projections), frozenset(keys) if keys is not None else None)
        slots = self._slots(watch)
        for slot_key in slots:
            slots[slot_key].add(watch)
        try:
            yield watch
        finally:
            for slot_key, slot in slots.items():
                slot.discard(watch)
                if not slot:  # forget empty slots, or they pile up with every watched key
                    self._drop(slot_key)

    def _slots(self, watch: Watch) -> dict[str | tuple[str, ChangeKey], set[Watch]]:
        if watch.keys is None:
            return {p: self.by_projection[p] for p in watch.projections}
        return {(p, k): self.by_key[(p, k)] for p in watch.projections for k in watch.keys}

    def _drop(self, slot_key: str | tuple[str, ChangeKey]) -> None:
        if isinstance(slot_key, tuple):
            self.by_key.pop(slot_key, None)
        else:
            self.by_projection.pop(slot_key, None)

    def dispatch(self, projection: str, keys: list[ChangeKey]) -> None:
        for watch in self.by_projection.get(projection, ()):
            watch.ring(keys)
        # A keyed watch hears the whole announcement: its neighbours tell what changed with it
        # (ordersChanged(customerId) learns which orders from the order keys).
        rung = {w for key in keys for w in self.by_key.get((projection, key), ())}
        for watch in rung:
            watch.ring(keys)

    def wake_all(self) -> None:
        for slot in (*self.by_projection.values(), *self.by_key.values()):
            for watch in slot:
                watch.resync = True
                watch.changed.set()

    async def run(self) -> None:
        """Hold the subscription until cancelled, resubscribing after Redis trouble."""
        backoff, broken = 0.2, False
        while True:
            try:
                async with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.channel)
                    reraise_if_cancelling()  # a cancelled connect may have come back quietly
                    self.connected.set()
                    if broken:
                        log.warning("change feed resubscribed; waking every watch")
                        broken, backoff = False, 0.2
                        self.wake_all()
                    await self._listen(pubsub)
            except (RedisError, OSError) as error:
                reraise_if_cancelling()
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
                self.dispatch(*_heard(message["data"]))
            except (ValueError, KeyError, TypeError):
                log.warning("ignoring a malformed announcement: %r", message.get("data"))


def announcement(projection: ProjectionName, keys: Iterable[str]) -> str:
    """What a projector publishes after a commit: its name and the keys it changed (in the
    text form `parse` reads, as its fold wrote them)."""
    return json.dumps({"projection": projection, "keys": sorted(keys)})


def _heard(data: str | bytes) -> tuple[str, list[ChangeKey]]:
    body = json.loads(data)
    keys = []
    for text in body["keys"]:
        # A newer projector's kind of key is no one's here; the others still ring.
        with contextlib.suppress(ValueError):
            keys.append(parse(str(text)))
    return str(body["projection"]), keys
