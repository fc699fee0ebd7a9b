"""The outbox relay: moves committed events from the outbox to Redis Streams.

One relay is active at a time: it holds a PostgreSQL advisory lock on its own connection,
and the others wait for it; when the active one dies its connection closes, the lock is
freed and a waiting relay takes over within a second. It wakes on NOTIFY from committing
commands and polls as a fallback. Delivery is at least once: a relay that dies between
XADD and marking the rows published sends them again, and projections skip duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.adapters.redis import RedisClient
from app.config.settings import Settings
from app.events.serialization import stream_fields
from app.events.streams import epoch_key, partition_of, published_key, stream_key
from app.pipeline.cancellation import reraise_if_cancelling
from app.write.outbox import NOTIFY_CHANNEL
from app.write.tables import outbox

log = logging.getLogger("app.relay")

_LEADER_LOCK = 0x5E0_1000
_MAX_BACKOFF_S = 10.0


class OutboxRelay:
    """A background loop (see app.runtime.worker) relaying the outbox while it holds the lead."""

    name = "outbox-relay"

    def __init__(self, write_engine: AsyncEngine, redis: RedisClient, settings: Settings) -> None:
        self.write_engine = write_engine
        self.redis = redis
        self.settings = settings

    async def run(self) -> None:
        async with self.write_engine.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await _wait_for_lead(connection)
            log.info("this process is the active outbox relay")
            wake = await _listen(connection)
            await _Relaying(self.settings, self.redis, connection, wake).run()


async def _wait_for_lead(connection: AsyncConnection) -> None:
    waiting_logged = False
    while not await connection.scalar(select(func.pg_try_advisory_lock(_LEADER_LOCK))):
        if not waiting_logged:
            log.info("another outbox relay is active; standing by")
            waiting_logged = True
        await asyncio.sleep(1.0)


async def _listen(connection: AsyncConnection) -> asyncio.Event:
    """An event set whenever a command commits new outbox rows."""
    wake = asyncio.Event()
    raw = await connection.get_raw_connection()
    await raw.driver_connection.add_listener(  # type: ignore[union-attr]
        NOTIFY_CHANNEL, lambda *_: wake.set()
    )
    return wake


class _Relaying:
    def __init__(
        self,
        settings: Settings,
        redis: RedisClient,
        connection: AsyncConnection,
        wake: asyncio.Event,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.connection = connection
        self.wake = wake
        self.epochs: list[Any] | None = None
        self.outage_since: float | None = None

    async def run(self) -> None:
        backoff = 0.2
        while True:
            self.wake.clear()
            try:
                sent = await self.relay_batch()
            except RedisError as error:
                reraise_if_cancelling()
                self._log_outage(error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                continue
            if self.outage_since is not None:
                log.warning("Redis answers again; relaying the backlog")
                self.outage_since = None
            backoff = 0.2
            if sent < self.settings.relay_batch_size:
                await self._sleep_until_woken()

    async def _sleep_until_woken(self) -> None:
        # asyncio.timeout, not wait_for: no task of its own for every wait (Python 3.11).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.relay_poll_interval_s):
                await self.wake.wait()

    def _log_outage(self, error: RedisError) -> None:
        # Once per outage, not once per try.
        if self.outage_since is None:
            self.outage_since = asyncio.get_running_loop().time()
            log.error("Redis unavailable (%s); events wait in the outbox", error)

    async def relay_batch(self) -> int:
        """Publish the oldest unpublished events and mark them; return how many."""
        if self.epochs is None:
            await self._check_epoch()
        rows = (
            await self.connection.execute(
                select(outbox)
                .where(outbox.c.published_at.is_(None))
                .order_by(outbox.c.position)
                .limit(self.settings.relay_batch_size)
            )
        ).all()
        if not rows:
            await self._check_epoch()  # idle, and still noticing a Redis that lost its data
            return 0
        if await self._publish(rows) != self.epochs:
            # Redis lost its data: these rows reached the new streams; send the rest again.
            await self._check_epoch()
        positions = [row.position for row in rows]
        await self.connection.execute(
            update(outbox).where(outbox.c.position.in_(positions)).values(published_at=func.now())
        )
        return len(rows)

    async def _publish(self, rows: Sequence[Any]) -> list[Any]:
        """XADD the rows; return the partitions' epochs as read just before, in the same
        round trip (a Redis that lost its data has none)."""
        prefix, partitions = self.settings.redis_prefix, self.settings.stream_partitions
        counts: Counter[int] = Counter()
        pipe = self.redis.pipeline(transaction=False)
        for partition in range(partitions):
            pipe.get(epoch_key(prefix, partition))
        for row in rows:
            partition = partition_of(row.aggregate_id, partitions)
            counts[partition] += 1
            fields = stream_fields(
                row.event_id, row.event_type, row.schema_version, row.aggregate_type,
                row.aggregate_id, row.aggregate_version, row.occurred_at, row.position,
                row.payload,
            )  # fmt: skip
            pipe.xadd(
                stream_key(prefix, partition),
                fields,  # type: ignore[arg-type]
                maxlen=self.settings.stream_max_len,
                approximate=True,
            )
        for partition, count in counts.items():
            pipe.incrby(published_key(prefix, partition), count)
        return list((await pipe.execute())[:partitions])

    async def _check_epoch(self) -> None:
        """Notice a Redis that lost its data (restarted empty) and send the whole log again.

        Each partition has its own epoch key, in the partition's slot, so on a Cluster a
        node that restarts empty takes the epoch keys of its partitions with it too.
        Projections skip what they already applied, so sending again is safe; sending less
        could lose events whose stream entries vanished before they were consumed.
        """
        prefix = self.settings.redis_prefix
        keys = [epoch_key(prefix, p) for p in range(self.settings.stream_partitions)]
        current = await self._get_all(keys)
        if current == self.epochs:
            return
        missing = [key for key, value in zip(keys, current, strict=True) if value is None]
        if missing:
            fresh = uuid.uuid4().hex
            pipe = self.redis.pipeline(transaction=False)
            for key in missing:
                pipe.set(key, fresh, nx=True)
            await pipe.execute()
            current = await self._get_all(keys)
            republished = (
                await self.connection.execute(
                    update(outbox)
                    .where(outbox.c.published_at.is_not(None))
                    .values(published_at=None)
                )
            ).rowcount
            if republished:
                log.warning(
                    "Redis holds no event streams for %d of %d partitions (restarted without "
                    "its data?): sending all %d published events again",
                    len(missing), len(keys), republished,
                )  # fmt: skip
        self.epochs = current

    async def _get_all(self, keys: list[str]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.get(key)
        return list(await pipe.execute())
