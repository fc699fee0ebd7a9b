"""Shared reads: a worker's consumers of one projection that ask for new entries in the same
step of the event loop read every partition in one XREADGROUP, each getting its own
partition's entries, read (pending) under its group and consumer name."""

from __future__ import annotations

import asyncio
from typing import Any

from app.events.streams import group_name, stream_key
from app.pipeline.shared_reads import SharedReads
from app.runtime.bootstrap import Stores

GROUP = group_name("order_view")


class _Counted:
    """The real client, with its XREADGROUP calls counted."""

    def __init__(self, redis: Any) -> None:
        self.redis, self.calls = redis, 0

    async def xreadgroup(self, *arguments: Any, **options: Any) -> Any:
        self.calls += 1
        return await self.redis.xreadgroup(*arguments, **options)


async def _partitions(stores: Stores, entries: dict[int, int]) -> list[str]:
    """Partition streams with the order_view group at their start and `entries[p]` entries."""
    redis, prefix = stores.redis, stores.settings.redis_prefix
    streams = []
    for partition, count in sorted(entries.items()):
        stream = stream_key(prefix, partition)
        await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
        for n in range(count):
            await redis.xadd(stream, {"n": f"{partition}.{n}"})
        streams.append(stream)
    return streams


async def _pending(stores: Stores, stream: str) -> dict[str, int]:
    summary: Any = await stores.redis.xpending(stream, GROUP)
    return {c["name"]: int(c["pending"]) for c in summary["consumers"]}


async def test_reads_of_one_step_go_in_one_call_each_getting_its_own_partition(
    stores: Stores,
) -> None:
    s0, s1, s2 = await _partitions(stores, {0: 2, 1: 3, 2: 0})
    counted = _Counted(stores.redis)
    reads = SharedReads(counted)  # type: ignore[arg-type]

    got = await asyncio.gather(
        reads.read(GROUP, "w1", s0, 10),
        reads.read(GROUP, "w1", s1, 10),
        reads.read(GROUP, "w1", s2, 10),
    )

    assert counted.calls == 1
    assert [[fields["n"] for _, fields in entries] for entries in got] == [
        ["0.0", "0.1"], ["1.0", "1.1", "1.2"], [],
    ]  # fmt: skip
    assert await _pending(stores, s0) == {"w1": 2}
    assert await _pending(stores, s1) == {"w1": 3}
    assert await _pending(stores, s2) == {}


async def test_a_read_waits_for_the_first_partition_with_entries(stores: Stores) -> None:
    s0, s1 = await _partitions(stores, {0: 0, 1: 0})
    counted = _Counted(stores.redis)
    reads = SharedReads(counted)  # type: ignore[arg-type]

    waiting = asyncio.gather(reads.read(GROUP, "w1", s0, 10), reads.read(GROUP, "w1", s1, 10))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    await stores.redis.xadd(s1, {"n": "late"})
    first, second = await asyncio.wait_for(waiting, 0.5)  # well before the 1 s block ends

    assert counted.calls == 1
    assert first == []
    assert [fields for _, fields in second] == [{"n": "late"}]


async def test_a_read_cancelled_before_it_is_sent_reads_nothing(stores: Stores) -> None:
    s0, s1 = await _partitions(stores, {0: 2, 1: 1})
    reads = SharedReads(stores.redis)

    cancelled = asyncio.create_task(reads.read(GROUP, "w1", s0, 10))
    other = asyncio.create_task(reads.read(GROUP, "w1", s1, 10))
    await asyncio.sleep(0)  # both asked; the call goes in the next step
    cancelled.cancel()
    assert [fields["n"] for _, fields in await other] == ["1.0"]

    assert cancelled.cancelled()
    assert await _pending(stores, s0) == {}  # nothing read for it: the next read gets all
    assert len(await reads.read(GROUP, "w2", s0, 10)) == 2


async def test_count_is_per_partition(stores: Stores) -> None:
    s0, s1 = await _partitions(stores, {0: 5, 1: 5})
    reads = SharedReads(stores.redis)

    first = await asyncio.gather(reads.read(GROUP, "w1", s0, 2), reads.read(GROUP, "w1", s1, 2))
    second = await asyncio.gather(reads.read(GROUP, "w1", s0, 2), reads.read(GROUP, "w1", s1, 2))

    assert [len(entries) for entries in first + second] == [2, 2, 2, 2]
    assert [fields["n"] for _, fields in second[1]] == ["1.2", "1.3"]


async def test_apart_each_read_is_a_call_of_its_own(stores: Stores) -> None:
    """As on a Redis Cluster, where one call cannot span the partitions' slots."""
    s0, s1 = await _partitions(stores, {0: 1, 1: 1})
    counted = _Counted(stores.redis)
    reads = SharedReads(counted, together=False)  # type: ignore[arg-type]

    got = await asyncio.gather(reads.read(GROUP, "w1", s0, 10), reads.read(GROUP, "w1", s1, 10))

    assert counted.calls == 2
    assert [[fields["n"] for _, fields in entries] for entries in got] == [["0.0"], ["1.0"]]


async def test_a_failed_call_fails_every_read_in_it(stores: Stores) -> None:
    (s0,) = await _partitions(stores, {0: 1})
    reads = SharedReads(stores.redis)

    outcomes = await asyncio.gather(
        reads.read(GROUP, "w1", s0, 10),
        reads.read(GROUP, "w1", stream_key(stores.settings.redis_prefix, 7), 10),  # no group
        return_exceptions=True,
    )

    assert all("NOGROUP" in str(outcome) for outcome in outcomes)
    assert await _pending(stores, s0) == {}


async def test_a_read_cancelled_in_flight_ends_with_its_call(stores: Stores) -> None:
    """So a consumer gives its partition back only once nothing more can be read for it: what
    the call read for it is pending under its name, for the next holder to take over."""
    s0, s1 = await _partitions(stores, {0: 0, 1: 0})
    reads = SharedReads(stores.redis)

    leaving = asyncio.create_task(reads.read(GROUP, "w1", s0, 10))
    staying = asyncio.create_task(reads.read(GROUP, "w1", s1, 10))
    await asyncio.sleep(0.2)  # sent: blocked in Redis
    leaving.cancel()
    await asyncio.sleep(0.2)
    assert not leaving.done()  # the call goes on for the other consumer
    await stores.redis.xadd(s1, {"n": "x"})
    assert [fields for _, fields in await asyncio.wait_for(staying, 0.5)] == [{"n": "x"}]
    await asyncio.wait([leaving], timeout=0.5)
    assert leaving.cancelled()

    # Alone in its call, a cancelled read cancels the call: it ends at once.
    alone = asyncio.create_task(reads.read(GROUP, "w1", s0, 10))
    await asyncio.sleep(0.2)
    alone.cancel()
    done, _ = await asyncio.wait([alone], timeout=0.3)
    assert done == {alone}
    assert reads._calls == set()
