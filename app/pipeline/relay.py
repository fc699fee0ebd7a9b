"""The outbox relay: moves committed events from the outbox to Redis Streams.

One relay is active at a time: it holds a PostgreSQL advisory lock on its own connection,
and the others wait for it; when the active one dies its connection closes, the lock is
freed and a waiting relay takes over within a second. It wakes on NOTIFY from committing
commands and polls as a fallback.

It marks no row: the outbox stays insert-only. Each row holds the id of the transaction that
wrote it, and the relay keeps a cursor (table relay_cursor): a position and the snapshot it
read the log in. Every row at or below the position that the snapshot saw has been published;
the rows there it did not see are those of transactions then in progress or not yet begun,
found by their ids (`unpublished_below`). A batch is the rows past the cursor plus those, read
in one statement with their stream entries built by PostgreSQL, and each partition's share is
added to its stream by one Lua script call; the next batch is read while one is published.

Delivery is at least once: the cursor of a batch is saved by the statement after its XADD, so
a relay that dies in between sends the batch again, and projections skip duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

import asyncpg
from redis.exceptions import RedisError
from sqlalchemy import Text, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.adapters.redis import RedisClient
from app.config.settings import Settings
from app.events.serialization import STREAM_FIELD_NAMES, STREAM_FIELDS_SQL
from app.events.streams import epoch_key, partition_sql, published_key, stream_key
from app.pipeline.cancellation import reraise_if_cancelling
from app.pipeline.event_log import snapshot_horizon, unpublished_below
from app.write.outbox import NOTIFY_CHANNEL
from app.write.tables import relay_cursor

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
            try:
                connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
                await _wait_for_lead(connection)
                log.info("this process is the active outbox relay")
                wake = await _listen(connection)
                await _Relaying(self.settings, self.redis, connection, wake).run()
            finally:
                # Closed, not returned to the pool: the lead (a session lock) and the listener
                # go with it, so the loop started again, or another relay, can take the lead.
                await connection.invalidate()


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


# Saves the cursor ($1, $2) the batches published so far reached, and reads the next batch:
# the rows at or below the read cursor's position ($3) that its snapshot did not see (those of
# transactions then in progress, $4, or not begun, from $5 on) and that have committed since,
# and up to $6 rows past it, in log order; grouped by partition ($7 partitions), after a
# first row holding the cursor this batch reaches.
_NEXT_BATCH = f"""
WITH saved AS (
    UPDATE relay_cursor SET through = $1, snapshot = $2 WHERE id = 1
), fresh AS (
    SELECT * FROM outbox WHERE position > $3 ORDER BY position LIMIT $6
), batch AS (
    {unpublished_below("$3", "$4::bigint[]", "$5")}
    UNION ALL
    SELECT * FROM fresh
)
SELECT -1, NULL::bigint[], NULL, coalesce((SELECT max(position) FROM fresh), $3),
       pg_current_snapshot()::text
UNION ALL
SELECT {partition_sql("aggregate_id", "$7")},
       array_agg(position ORDER BY position),
       string_agg(concat_ws(E'\\x1f', {", ".join(STREAM_FIELDS_SQL)}), E'\\x1e' ORDER BY position),
       NULL, NULL
FROM batch GROUP BY 1
"""

# Adds each partition's entries to its stream (KEYS[2p - 1]), capped near ARGV[1] entries,
# and counts them (KEYS[2p]). ARGV[p + 1] holds the p-th partition's entries, each its field
# values in STREAM_FIELD_NAMES order separated by \x1f, the entries separated by \x1e: no
# value can hold either (the payload is JSON, which escapes control characters; the others
# are ids, names, numbers and a time). One call for every partition where one server holds
# them all: readers blocked on several partitions (app/pipeline/shared_reads.py) then wake
# to all of the batch at once, not to its first partition.
_PUBLISH = f"""
local values = {{}}
for p = 1, #KEYS / 2 do
  local data, at, count = ARGV[p + 1], 1, 0
  while true do
    for i = 1, {len(STREAM_FIELD_NAMES) - 1} do
      local stop = string.find(data, '\\31', at, true)
      values[i] = string.sub(data, at, stop - 1)
      at = stop + 1
    end
    local stop = string.find(data, '\\30', at, true)
    values[{len(STREAM_FIELD_NAMES)}] = string.sub(data, at, (stop or 0) - 1)
    redis.call('XADD', KEYS[2 * p - 1], 'MAXLEN', '~', ARGV[1], '*',
      {", ".join(f"'{name}', values[{i + 1}]" for i, name in enumerate(STREAM_FIELD_NAMES))})
    count = count + 1
    if not stop then break end
    at = stop + 1
  end
  redis.call('INCRBY', KEYS[2 * p], count)
end
return #KEYS / 2
"""


class _Cursor(NamedTuple):
    """Every outbox row at or below `through` that `snapshot` (a pg_snapshot's text) saw."""

    through: int
    snapshot: str


class _Part(NamedTuple):
    """A partition's share of a batch."""

    partition: int
    positions: list[int]
    entries: str  # its entries, as _PUBLISH reads them


class _Batch(NamedTuple):
    parts: list[_Part]
    cursor: _Cursor  # where the relay is once this batch is published

    @property
    def size(self) -> int:
        return sum(len(part.positions) for part in self.parts)


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
        self.epochs_checked_at = 0.0
        # Where the batches published so far reach (saved by the next statement), and where
        # the batches read so far reach (a batch is read while the one before is published).
        self.published: _Cursor | None = None
        self.read: _Cursor | None = None

    async def run(self) -> None:
        backoff = 0.2
        gather_s = self.settings.relay_gather_ms / 1000
        while True:
            self.wake.clear()
            try:
                sent = await self.relay()
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
            await self._sleep_until_woken()
            if sent > 1 and gather_s > 0:
                # Commits came faster than one pass: let the next ones join this batch. Each
                # batch costs every projection its round trips whatever its size, so under
                # load a few milliseconds here buy fewer, bigger batches downstream; alone,
                # an event is relayed at once.
                await asyncio.sleep(gather_s)

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

    async def relay(self) -> int:
        """Publish until nothing is left unpublished; return how many events were published.

        Through a backlog, each batch is read (by the statement that saves the cursor of
        those published) while the one before it is being published, so PostgreSQL and Redis
        work at once.
        """
        if self.published is None:
            self.published = self.read = await self._load_cursor()
        if self.epochs is None:
            await self._check_epoch()
        sent = 0
        while (batch := await self._next_batch()).parts:
            while batch.parts:
                if batch.size < self.settings.relay_batch_size:
                    # The log is drained: publish, then save and look again in one statement
                    # (reading ahead would cost a statement per wake-up under a light load).
                    try:
                        current = await self._publish(batch.parts)
                    except BaseException:
                        self.read = self.published  # read again
                        raise
                    self.published = batch.cursor
                    sent += batch.size
                    if current != self.epochs:
                        await self._check_epoch()
                    break
                both = await asyncio.gather(
                    self._publish(batch.parts), self._next_batch(), return_exceptions=True
                )
                epochs: list[Any] | BaseException = both[0]
                following: _Batch | BaseException = both[1]
                if isinstance(epochs, BaseException):
                    self.read = self.published  # what was read since is read again
                    raise epochs
                self.published = batch.cursor
                sent += batch.size
                if isinstance(following, BaseException):
                    self.read = self.published
                    raise following
                if epochs != self.epochs and await self._check_epoch():
                    break  # Redis lost its data: everything goes again, from the start
                batch = following
        self.published = batch.cursor  # nothing was left past it
        # Idle, and still noticing a Redis that lost its data: once a poll interval, not at
        # every wake-up (each publish compares the epochs too).
        now = asyncio.get_running_loop().time()
        if now - self.epochs_checked_at >= self.settings.relay_poll_interval_s:
            await self._check_epoch()
        return sent

    async def _next_batch(self) -> _Batch:
        """Save the published cursor and read the batch after the read cursor, which moves
        past it."""
        assert self.published is not None
        assert self.read is not None
        raw = await self.connection.get_raw_connection()
        driver: asyncpg.Connection = raw.driver_connection
        head, *parts = await driver.fetch(
            _NEXT_BATCH, *self.published, self.read.through, *snapshot_horizon(self.read.snapshot),
            self.settings.relay_batch_size, self.settings.stream_partitions,
        )  # fmt: skip
        self.read = _Cursor(head[3], head[4])
        return _Batch([_Part(*part[:3]) for part in parts], self.read)

    async def _load_cursor(self) -> _Cursor:
        query = select(relay_cursor.c.through, relay_cursor.c.snapshot)
        row = (await self.connection.execute(query)).one()
        return _Cursor(row.through, row.snapshot)

    async def _publish(self, batch: Sequence[_Part]) -> list[Any]:
        """XADD the batch, in one script call (one per partition on a Cluster); return the
        partitions' epochs as read just before, in the same round trip (a Redis that lost its
        data has none)."""
        prefix, partitions = self.settings.redis_prefix, self.settings.stream_partitions
        pipe = self.redis.pipeline(transaction=False)
        for partition in range(partitions):
            pipe.get(epoch_key(prefix, partition))
        # On a Cluster the partitions are in different slots: a call for each.
        together = not self.settings.redis_cluster and len(batch) > 1
        calls = [list(batch)] if together else [[part] for part in batch]
        for parts in calls:
            keys = [
                key for part in parts for key in
                (stream_key(prefix, part.partition), published_key(prefix, part.partition))
            ]  # fmt: skip
            # EVAL, not EVALSHA: a cluster pipeline cannot load scripts, and Redis keeps the
            # compiled script by its digest anyway.
            pipe.eval(
                _PUBLISH, len(keys), *keys, self.settings.stream_max_len,
                *(part.entries for part in parts),
            )  # fmt: skip
        return list((await pipe.execute())[:partitions])

    async def _check_epoch(self) -> bool:
        """Notice a Redis that lost its data (restarted empty) and send the whole log again
        (say whether it must).

        Each partition has its own epoch key, in the partition's slot, so on a Cluster a
        node that restarts empty takes the epoch keys of its partitions with it too.
        Projections skip what they already applied, so sending again is safe; sending less
        could lose events whose stream entries vanished before they were consumed.
        """
        self.epochs_checked_at = asyncio.get_running_loop().time()
        prefix = self.settings.redis_prefix
        keys = [epoch_key(prefix, p) for p in range(self.settings.stream_partitions)]
        current = await self._get_all(keys)
        if current == self.epochs:
            return False
        missing = [key for key, value in zip(keys, current, strict=True) if value is None]
        if missing:
            fresh = uuid.uuid4().hex
            pipe = self.redis.pipeline(transaction=False)
            for key in missing:
                pipe.set(key, fresh, nx=True)
            await pipe.execute()
            current = await self._get_all(keys)
            # Send everything again, from the start of the log.
            republished = self.published.through if self.published else 0
            saved = (
                await self.connection.execute(
                    update(relay_cursor)
                    .values(through=0, snapshot=func.pg_current_snapshot().cast(Text))
                    .returning(relay_cursor.c.through, relay_cursor.c.snapshot)
                )
            ).one()
            self.published = self.read = _Cursor(saved.through, saved.snapshot)
            if republished:
                log.warning(
                    "Redis holds no event streams for %d of %d partitions (restarted without "
                    "its data?): sending every event up to position %d again",
                    len(missing), len(keys), republished,
                )  # fmt: skip
        self.epochs = current
        return bool(missing)

    async def _get_all(self, keys: list[str]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.get(key)
        return list(await pipe.execute())
