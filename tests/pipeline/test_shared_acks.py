"""Shared acknowledgements: the consumers (one per projection and partition) that acknowledge
in the same step of the event loop do it in one round trip, each entry acknowledged for its
own group, counted for its own projection and announced once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from redis.exceptions import ResponseError

from app.events.streams import acked_key, changes_channel, group_name, stream_key
from app.pipeline.shared_acks import ACK_CHUNK, SharedAcks
from app.runtime.bootstrap import Stores

PROJECTIONS = ("order_view", "customer_summary", "daily_sales")


async def _stream_read_by_every_group(
    stores: Stores, entries: int, partition: int = 0
) -> tuple[str, list[str]]:
    """A partition's stream with `entries` entries, read (pending) by each projection's group."""
    redis, prefix = stores.redis, stores.settings.redis_prefix
    stream = stream_key(prefix, partition)
    pipe = redis.pipeline(transaction=False)
    for n in range(entries):
        pipe.xadd(stream, {"n": str(n)})
    ids = [str(entry_id) for entry_id in await pipe.execute()]
    for projection in PROJECTIONS:
        await redis.xgroup_create(stream, group_name(projection), id="0")
        await redis.xreadgroup(group_name(projection), "c", {stream: ">"}, count=entries)
    return stream, ids


async def _pending(stores: Stores, stream: str, projection: str) -> int:
    summary: Any = await stores.redis.xpending(stream, group_name(projection))
    return int(summary["pending"])


class _Counted:
    """The real client, with its round trips (pipelines sent) counted."""

    def __init__(self, redis: Any) -> None:
        self.redis, self.calls = redis, 0

    def pipeline(self, **options: Any) -> Any:
        self.calls += 1
        return self.redis.pipeline(**options)


async def test_acknowledgements_of_one_step_go_in_one_call_each_for_its_own_group(
    stores: Stores,
) -> None:
    redis, prefix = stores.redis, stores.settings.redis_prefix
    stream, ids = await _stream_read_by_every_group(stores, 5)
    counted = _Counted(redis)
    acks = SharedAcks(counted, changes_channel(prefix))  # type: ignore[arg-type]
    listener = redis.pubsub()
    await listener.subscribe(changes_channel(prefix))
    await listener.get_message(timeout=1)  # the subscription's confirmation

    said = {p: json.dumps({"projection": p, "keys": [f"k:{p}"]}) for p in PROJECTIONS}
    await asyncio.gather(
        acks.acknowledge(
            stream, group_name("order_view"), acked_key(prefix, 0, "order_view"), ids,
            said["order_view"],
        ),
        acks.acknowledge(
            stream, group_name("customer_summary"), acked_key(prefix, 0, "customer_summary"),
            ids[:3], "",
        ),
        acks.acknowledge(
            stream, group_name("daily_sales"), acked_key(prefix, 0, "daily_sales"), ids,
            said["daily_sales"],
        ),
    )  # fmt: skip

    assert counted.calls == 1
    assert await _pending(stores, stream, "order_view") == 0
    assert await _pending(stores, stream, "customer_summary") == 2  # its own two are left
    assert await _pending(stores, stream, "daily_sales") == 0
    assert await redis.get(acked_key(prefix, 0, "order_view")) == "5"
    assert await redis.get(acked_key(prefix, 0, "customer_summary")) == "3"
    heard = []
    while (message := await listener.get_message(timeout=1)) is not None:
        heard.append(message["data"])
    await listener.aclose()
    assert sorted(heard) == sorted([said["order_view"], said["daily_sales"]])

    # A later step is a call of its own.
    await acks.acknowledge(
        stream, group_name("customer_summary"), acked_key(prefix, 0, "customer_summary"),
        ids[3:], "",
    )  # fmt: skip
    assert counted.calls == 2
    assert await _pending(stores, stream, "customer_summary") == 0
    assert await redis.get(acked_key(prefix, 0, "customer_summary")) == "5"


async def test_a_batch_longer_than_a_chunk_is_acknowledged_whole(stores: Stores) -> None:
    redis, prefix = stores.redis, stores.settings.redis_prefix
    entries = 2 * ACK_CHUNK + 7
    stream, ids = await _stream_read_by_every_group(stores, entries)
    acks = SharedAcks(redis, changes_channel(prefix))

    await asyncio.gather(
        *(
            acks.acknowledge(stream, group_name(p), acked_key(prefix, 0, p), ids, "")
            for p in PROJECTIONS
        )
    )

    for projection in PROJECTIONS:
        assert await _pending(stores, stream, projection) == 0
        assert await redis.get(acked_key(prefix, 0, projection)) == str(entries)


async def test_a_call_that_fails_fails_every_consumer_in_it(stores: Stores) -> None:
    redis, prefix = stores.redis, stores.settings.redis_prefix
    stream, ids = await _stream_read_by_every_group(stores, 3)
    acks = SharedAcks(redis, changes_channel(prefix))
    broken = acked_key(prefix, 0, "daily_sales")
    await redis.set(broken, "not a number")

    outcomes = await asyncio.gather(
        acks.acknowledge(stream, group_name("order_view"), acked_key(prefix, 0, "order_view"),
                         ids, ""),
        acks.acknowledge(stream, group_name("daily_sales"), broken, ids, ""),
        return_exceptions=True,
    )  # fmt: skip

    assert all(isinstance(outcome, ResponseError) for outcome in outcomes)
    assert "not an integer" in str(outcomes[0])


async def test_partitions_of_one_step_go_in_one_round_trip_and_fail_apart(stores: Stores) -> None:
    redis, prefix = stores.redis, stores.settings.redis_prefix
    first, first_ids = await _stream_read_by_every_group(stores, 2, partition=1)
    second, second_ids = await _stream_read_by_every_group(stores, 3, partition=2)
    counted = _Counted(redis)
    acks = SharedAcks(counted, changes_channel(prefix))  # type: ignore[arg-type]
    broken = acked_key(prefix, 2, "daily_sales")
    await redis.set(broken, "not a number")

    outcomes = await asyncio.gather(
        acks.acknowledge(first, group_name("order_view"), acked_key(prefix, 1, "order_view"),
                         first_ids, ""),
        acks.acknowledge(first, group_name("daily_sales"), acked_key(prefix, 1, "daily_sales"),
                         first_ids, ""),
        acks.acknowledge(second, group_name("order_view"), acked_key(prefix, 2, "order_view"),
                         second_ids, ""),
        acks.acknowledge(second, group_name("daily_sales"), broken, second_ids, ""),
        return_exceptions=True,
    )  # fmt: skip

    assert counted.calls == 1
    assert outcomes[:2] == [None, None]
    assert all(isinstance(outcome, ResponseError) for outcome in outcomes[2:])
    assert await _pending(stores, first, "order_view") == 0
    assert await _pending(stores, first, "daily_sales") == 0
    assert await redis.get(acked_key(prefix, 1, "order_view")) == "2"
    assert await redis.get(acked_key(prefix, 1, "daily_sales")) == "2"
    assert await redis.get(broken) == "not a number"
