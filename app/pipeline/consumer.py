"""Consume one partition stream for one projection while this worker holds its lease."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from redis.exceptions import RedisError, ResponseError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.postgres import lost_a_race
from app.adapters.redis import RedisClient
from app.config.settings import Settings
from app.events import UnknownEventError
from app.events.serialization import from_stream_fields
from app.events.streams import acked_key, changes_channel, group_name, stream_key
from app.pipeline.applier import BatchResult, Delivery, OutOfOrder, apply_batch, park
from app.pipeline.cancellation import reraise_if_cancelling
from app.pipeline.change_feed import announcement
from app.pipeline.dead_letters import park_undecodable
from app.pipeline.leases import Unit
from app.pipeline.shared_acks import SharedAcks
from app.pipeline.shared_batches import SharedBatches
from app.pipeline.shared_reads import SharedReads
from app.projections.base import Projection

log = logging.getLogger("app.projections")

Entry = tuple[str, dict[str, str]]
Fetched = tuple[list[Entry], list[Delivery]]


def is_transient(error: BaseException) -> bool:
    """Infrastructure trouble or a race lost to another transaction (a deadlock beside a
    rebuild's swap): try the batch again later. Not a poison event."""
    if isinstance(error, OperationalError | InterfaceError | OSError | TimeoutError):
        return True
    if lost_a_race(error):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


class PartitionConsumer:
    """Reads a partition through the projection's consumer group and applies it in batches."""

    def __init__(
        self,
        projection: Projection,
        unit: Unit,
        consumer: str,
        settings: Settings,
        redis: RedisClient,
        engine: AsyncEngine,
        batches: SharedBatches | None = None,
        acks: SharedAcks | None = None,
        reads: SharedReads | None = None,
    ) -> None:
        self.projection = projection
        # Shared with the worker's other consumers (app/pipeline/runner.py).
        self.batches = batches or SharedBatches(engine)
        self.settings = settings
        self.redis = redis
        self.engine = engine
        self.consumer = consumer
        self.stream = stream_key(settings.redis_prefix, unit.partition)
        # Named as the worker names the consumer's own task (app/pipeline/runner.py).
        self.ahead_name = f"{unit.projection}/{unit.partition}/read-ahead"
        self.acked = acked_key(settings.redis_prefix, unit.partition, projection.name)
        self.group = group_name(projection.name)
        self.channel = changes_channel(settings.redis_prefix)
        # Shared with the worker's consumers of the same partition (app/pipeline/runner.py).
        self.acks = acks or SharedAcks(redis, self.channel)
        # Shared with the worker's consumers of the same projection (app/pipeline/runner.py).
        self.reads = reads or SharedReads(redis)

    async def run(self) -> None:
        """Until cancelled: take over what a previous holder left, then read new entries.

        Trouble with Redis or the read store pauses the partition and starts again from this
        consumer's unacknowledged entries, so nothing read is ever dropped.
        """
        backoff, outage = 0.2, False
        while True:
            try:
                await self.ensure_group()
                await self.take_over()
                if outage:
                    log.warning("%s %s: consuming again", self.projection.name, self.stream)
                    outage = False
                await self.consume()
            except OutOfOrder as error:
                # Another consumer still holds the earlier entries: take them over, read again.
                log.warning("%s %s: %s; reading again", self.projection.name, self.stream, error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            except (RedisError, OperationalError, InterfaceError, OSError, TimeoutError) as error:
                reraise_if_cancelling()
                if not outage:  # once per outage, not per try
                    log.error("%s %s: paused: %s", self.projection.name, self.stream, error)
                    outage = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            else:
                backoff = 0.2

    async def consume(self) -> None:
        """Read and apply batches, in stream order. Once the backlog is done, the next batch
        is read (and decoded) while this one is applied, so the read store and this process
        work at the same time; it is applied only after this one is acknowledged."""
        backlog = True  # our own pending entries first: read them again only once applied
        ahead: asyncio.Task[Fetched] | None = None
        try:
            while True:
                try:
                    entries, deliveries = await (ahead or self.fetch(backlog))
                except ResponseError as error:
                    if "NOGROUP" not in str(error):
                        raise
                    log.warning("%s: consumer group gone (Redis lost its data?)", self.stream)
                    return
                ahead = None
                backlog = backlog and bool(entries)
                if not backlog:
                    ahead = asyncio.create_task(self.fetch(False), name=self.ahead_name)
                if entries:
                    await self.process(entries, deliveries)
        finally:
            if ahead is not None:  # what it read stays pending: read again or taken over
                ahead.cancel()
                await asyncio.wait([ahead])
                if not ahead.cancelled():
                    ahead.exception()  # retrieved: the error that ended this, if any, is raised

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def take_over(self) -> None:
        """Claim every entry another consumer of the group read but never acknowledged."""
        cursor = "0-0"
        while True:
            # Not JUSTID: redis-py then drops the cursor from the reply.
            reply: Any = await self.redis.xautoclaim(
                self.stream, self.group, self.consumer, min_idle_time=0, start_id=cursor,
                count=self.settings.projector_batch_size,
            )  # fmt: skip
            cursor = reply[0]
            if cursor in ("0-0", b"0-0"):
                return

    async def read(self, backlog: bool) -> list[Entry]:
        """Our own pending entries (`backlog`), or new ones: those wait up to a second, read
        with the other partitions' consumers of this projection in one call (SharedReads)."""
        count = self.settings.projector_batch_size
        if not backlog:
            return await self.reads.read(
                self.group, self.consumer, self.stream, count, projection=self.projection.name
            )
        reply: Any = await self.redis.xreadgroup(
            self.group, self.consumer, {self.stream: "0"}, count=count
        )
        if not reply:
            return []
        _, entries = reply[0]
        return [(entry_id, fields) for entry_id, fields in entries if fields]

    async def fetch(self, backlog: bool) -> Fetched:
        """The next entries and the events in them."""
        entries = await self.read(backlog)
        return entries, await self._decode(entries)

    async def process(self, entries: Sequence[Entry], deliveries: Sequence[Delivery]) -> None:
        result = await self._apply(deliveries)
        said = announcement(self.projection.name, result.changed) if result.changed else ""
        await self.acknowledge([entry_id for entry_id, _ in entries], said)

    async def _decode(self, entries: Sequence[Entry]) -> list[Delivery]:
        deliveries = []
        for entry_id, fields in entries:
            try:
                deliveries.append(Delivery(entry_id, fields, from_stream_fields(fields)))
            except UnknownEventError as error:
                log.error("%s %s: cannot read entry %s: %s", self.projection.name, self.stream,
                          entry_id, error)  # fmt: skip
                async with self.engine.begin() as connection:
                    await park_undecodable(
                        connection, self.projection, entry_id, fields, str(error)
                    )
        return deliveries

    async def _apply(self, deliveries: Sequence[Delivery]) -> BatchResult:
        """Apply the batch with the worker's other batches (group commit), then alone what
        that left (an aggregate parked, out of order, or written by another applier meanwhile)
        or all of it if the combined statement failed; a batch that fails alone is applied
        one event at a time."""
        result = BatchResult()
        rest = deliveries
        try:
            shared = await self.batches.apply(self.projection, deliveries)
            if shared is not None:  # None: the combined statement failed and applied nothing
                result, rest = shared, shared.left
            if rest:
                async with self.engine.begin() as connection:
                    result.add(await apply_batch(connection, self.projection, rest))
            return result
        except Exception as error:
            reraise_if_cancelling()
            if isinstance(error, OutOfOrder) or is_transient(error):
                # The batch is read again, and what was applied of it then skipped: its
                # changes are announced now or never.
                if result.changed:
                    await self.redis.publish(
                        self.channel, announcement(self.projection.name, result.changed)
                    )
                raise
            log.warning("%s: batch of %d failed (%s); applying one by one",
                        self.projection.name, len(rest), error)  # fmt: skip
        alone = await self._apply_one_by_one(rest)
        alone.changed |= result.changed
        return alone

    async def _apply_one_by_one(self, deliveries: Sequence[Delivery]) -> BatchResult:
        total = BatchResult()
        for delivery in deliveries:
            total.add(await self._apply_with_retries(delivery))
        return total

    async def _apply_with_retries(self, delivery: Delivery) -> BatchResult:
        attempts = self.settings.projector_max_attempts
        for attempt in range(1, attempts + 1):
            try:
                async with self.engine.begin() as connection:
                    return await apply_batch(connection, self.projection, [delivery])
            except OutOfOrder:
                raise
            except Exception as error:
                reraise_if_cancelling()
                if is_transient(error):
                    raise
                if attempt == attempts:
                    return await self._park(delivery, error, attempts)
                await asyncio.sleep(0.1 * 2**attempt)
        raise AssertionError("unreachable")

    async def _park(self, delivery: Delivery, error: Exception, attempts: int) -> BatchResult:
        event = delivery.event
        log.error(
            "%s: parking %s %s v%d after %d attempts: %s", self.projection.name,
            event.event_type, event.aggregate_id, event.aggregate_version, attempts, error,
        )  # fmt: skip
        reason = f"{type(error).__name__}: {error}"
        async with self.engine.begin() as connection:
            await park(connection, self.projection, [delivery], reason, attempts)
        return BatchResult(parked=1)

    async def acknowledge(self, entry_ids: Sequence[str], announcement: str = "") -> None:
        """XACK after the commit, count what was acknowledged (for lag), and then announce
        what changed: with the other projections' consumers of this partition, in one round
        trip (`SharedAcks`)."""
        await self.acks.acknowledge(self.stream, self.group, self.acked, entry_ids, announcement)
