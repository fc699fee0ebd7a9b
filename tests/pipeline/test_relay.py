"""The relay: stream entries built by PostgreSQL, and a cursor instead of marked rows.

The relay keeps a position and the snapshot it read the log in (app/pipeline/relay.py). These
tests hold it to what that must mean: an entry equal to the one the Python code would build,
in the partition `partition_of` names; rows of transactions that commit after the relay has
passed their position published all the same, once; nothing sent twice after a clean restart.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.adapters.migrations import History, upgrade
from app.adapters.redis import create_redis
from app.config.settings import Settings
from app.events.serialization import from_stream_fields, stream_fields
from app.events.streams import epoch_key, partition_of, partition_sql, stream_key
from app.pipeline.event_log import unpublished
from app.pipeline.relay import OutboxRelay, _Relaying
from app.runtime.bootstrap import Stores, open_stores
from app.runtime.worker import running_loops
from app.write.outbox import NOTIFY_CHANNEL as NOTIFY
from devtools.ports import free_port
from tests.support.pipeline_waits import until_relayed

_INSERT = text(
    "INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, event_type,"
    " schema_version, payload, occurred_at) VALUES (:event, 'Order', :order, 1, 'OrderPaid',"
    " 1, CAST(:payload AS jsonb), now()) RETURNING position"
)


async def _log_event(connection: AsyncConnection, order: uuid.UUID | None = None) -> int:
    """Add an OrderPaid event to the log in the connection's transaction; its position."""
    order = order or uuid.uuid4()
    payload = {"order_id": str(order), "customer_id": str(uuid.uuid4()), "note": 'a "quote" é'}
    parameters = {"event": uuid.uuid4(), "order": order, "payload": json.dumps(payload)}
    return int((await connection.execute(_INSERT, parameters)).scalar_one())


async def _entries(stores: Stores) -> list[tuple[int, dict[str, str]]]:
    """Every stream entry, with its partition."""
    s = stores.settings
    found = []
    for partition in range(s.stream_partitions):
        entries: Any = await stores.redis.xrange(stream_key(s.redis_prefix, partition))
        found += [(partition, fields) for _, fields in entries]
    return found


async def _published_positions(stores: Stores) -> list[int]:
    return sorted(int(fields["position"]) for _, fields in await _entries(stores))


def _envelope(event: Any) -> tuple[Any, ...]:
    return (
        event.event_id, event.event_type, event.schema_version, event.aggregate_type,
        event.aggregate_id, event.aggregate_version, event.occurred_at,
    )  # fmt: skip


def _relay(stores: Stores) -> OutboxRelay:
    return OutboxRelay(stores.write_engine, stores.redis, stores.settings)


async def test_partitions_computed_by_postgresql_are_those_of_partition_of(
    stores: Stores,
) -> None:
    ids = [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), uuid.UUID(int=2**127), *(
        uuid.uuid4() for _ in range(500))]  # fmt: skip
    for partitions in (1, 7, 8, 1024):
        query = text(
            f"SELECT {partition_sql('id', ':partitions')} FROM unnest(CAST(:ids AS uuid[]))"
            " WITH ORDINALITY AS t(id, n) ORDER BY n"
        )
        async with stores.write_engine.connect() as connection:
            got = list(await connection.scalars(query, {"ids": ids, "partitions": partitions}))
        assert got == [partition_of(i, partitions) for i in ids]


async def test_each_entry_postgresql_builds_is_the_one_python_would(stores: Stores) -> None:
    async with stores.write_engine.begin() as connection:
        for _ in range(40):
            await _log_event(connection)
    async with running_loops([_relay(stores)]):
        await until_relayed(stores)
    async with stores.write_engine.connect() as connection:
        rows = {
            row.position: row
            for row in await connection.execute(text("SELECT *, payload::text AS text FROM outbox"))
        }
    entries = await _entries(stores)
    assert sorted(int(fields["position"]) for _, fields in entries) == sorted(rows)
    for partition, fields in entries:
        row = rows[int(fields["position"])]
        expected = stream_fields(
            row.event_id, row.event_type, row.schema_version, row.aggregate_type,
            row.aggregate_id, row.aggregate_version, row.occurred_at, row.position, row.text,
        )  # fmt: skip
        assert fields.keys() == expected.keys()
        got, want = from_stream_fields(fields), from_stream_fields(expected)
        assert json.loads(got.payload_json) == json.loads(want.payload_json) == row.payload
        assert _envelope(got) == _envelope(want)
        assert got.event == want.event  # the payload decodes to the same event
        assert partition == partition_of(row.aggregate_id, stores.settings.stream_partitions)


async def test_rows_committed_after_the_relay_passed_their_position_are_published_once(
    stores: Stores,
) -> None:
    engine = stores.write_engine
    async with engine.connect() as slow:
        # A transaction that takes its position, then is slow to commit.
        late_transaction = await slow.begin()
        late = await _log_event(slow)
        async with engine.begin() as connection:
            early = await _log_event(connection)
        async with engine.connect() as connection:  # a position taken, then rolled back
            rolled_back = await connection.begin()
            gap = await _log_event(connection)
            await rolled_back.rollback()
        async with engine.begin() as connection:
            after_gap = await _log_event(connection)
        async with running_loops([_relay(stores)]):
            await until_relayed(stores)  # what has committed
        assert await _published_positions(stores) == [early, after_gap]
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT through FROM relay_cursor")) == after_gap
        await late_transaction.commit()
    async with engine.begin() as connection:
        # A row whose transaction began after the relay's snapshot, at a position below its
        # cursor: what a transaction that took its position just before the snapshot and
        # got its id just after would write.
        await connection.execute(
            text(
                "INSERT INTO outbox (position, event_id, aggregate_type, aggregate_id,"
                " aggregate_version, event_type, schema_version, payload, occurred_at)"
                " OVERRIDING SYSTEM VALUE SELECT :gap, gen_random_uuid(), aggregate_type,"
                " gen_random_uuid(), 1, event_type, schema_version, payload, occurred_at"
                " FROM outbox WHERE position = :late"
            ),
            {"gap": gap, "late": late},
        )
    async with engine.connect() as connection:
        assert await unpublished(connection) == 2
    async with running_loops([_relay(stores)]):
        await until_relayed(stores)
    assert await _published_positions(stores) == sorted([late, early, gap, after_gap])
    # Started again, the relay sends nothing twice: only what was added since.
    async with engine.begin() as connection:
        newest = await _log_event(connection)
    async with running_loops([_relay(stores)]):
        await until_relayed(stores)
    assert await _published_positions(stores) == sorted([late, early, gap, after_gap, newest])


async def test_upgrading_a_log_of_marked_rows_publishes_what_was_not(
    unmigrated_settings: Settings,
) -> None:
    async with open_stores(unmigrated_settings) as stores:
        await upgrade(stores.write_engine, History.WRITE, "w0004")
        async with stores.write_engine.begin() as connection:
            positions = [await _log_event(connection) for _ in range(5)]
            await connection.execute(
                text("UPDATE outbox SET published_at = now() WHERE position <> :unpublished"),
                {"unpublished": positions[3]},
            )
        await upgrade(stores.write_engine, History.WRITE)
        async with stores.write_engine.connect() as connection:
            cursor: Any = (await connection.execute(text("SELECT * FROM relay_cursor"))).one()
            assert cursor.through == positions[2]
            assert await unpublished(connection) == 2
        s = stores.settings  # a Redis that holds what was published before the upgrade
        for partition in range(s.stream_partitions):
            await stores.redis.set(epoch_key(s.redis_prefix, partition), "before the upgrade")
        async with running_loops([_relay(stores)]):
            await until_relayed(stores)
        # The fourth, and the fifth again: published before it, so after the cursor.
        assert await _published_positions(stores) == positions[3:]


async def test_a_batch_redis_refused_is_read_and_sent_again(stores: Stores) -> None:
    async with stores.write_engine.begin() as connection:
        positions = [await _log_event(connection) for _ in range(3)]
    down = create_redis(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
    async with stores.write_engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        relaying = _Relaying(stores.settings, down, connection, asyncio.Event())
        relaying.epochs = []  # as if already checked: the refusal comes from publishing
        with pytest.raises(RedisError):
            await relaying.relay()
        assert await _published_positions(stores) == []
        # Redis is back, holding what it held (no epoch key lost: nothing is sent again).
        s = stores.settings
        for partition in range(s.stream_partitions):
            await stores.redis.set(epoch_key(s.redis_prefix, partition), "e")
        relaying.redis, relaying.epochs = stores.redis, ["e"] * s.stream_partitions
        assert await relaying.relay() == 3
    assert await _published_positions(stores) == positions
    await down.aclose()


async def test_a_busy_relay_gathers_before_its_next_pass_and_a_trickle_goes_at_once(
    stores: Stores,
) -> None:
    # A window far longer than a pass and than the poll interval (the relay's fallback for a
    # NOTIFY it missed, as at its start), so that waiting in it or not is plain to see.
    settings = stores.settings.model_copy(
        update={"relay_gather_ms": 3000, "relay_poll_interval_s": 1.0}
    )
    loop = asyncio.get_running_loop()

    async def seconds_to_relay(events: int) -> float:
        started = loop.time()
        async with stores.write_engine.begin() as connection:
            for _ in range(events):
                await _log_event(connection)
            await connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY})
        await until_relayed(stores)
        return loop.time() - started

    async with running_loops([OutboxRelay(stores.write_engine, stores.redis, settings)]):
        await until_relayed(stores)
        alone = await seconds_to_relay(1)
        await seconds_to_relay(2)  # one pass publishes both: the relay is busy
        after_busy = await seconds_to_relay(1)
        after_alone = await seconds_to_relay(1)
    assert alone < 2.0
    assert after_busy >= 2.9  # it waited for more to come
    assert after_alone < 2.0  # that pass sent one event: no wait
    assert len(await _published_positions(stores)) == 5
