"""The event pipeline on a real three-node Redis Cluster (SHOP_REDIS_CLUSTER=true)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from redis.asyncio import Redis, RedisCluster
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.redis import RedisModeError, create_redis, ping
from app.config.settings import Role, Settings, load_settings
from app.events.streams import acked_key, changes_channel, published_key, stream_key
from app.pipeline.relay import OutboxRelay
from app.pipeline.runner import ProjectionRunner
from app.projections.change_keys import order_key
from app.projections.registry import PROJECTIONS
from app.runtime.bootstrap import Api, Stores, open_api, open_stores
from app.runtime.worker import running_loops
from devtools.graphql_client import PAY_ORDER, GraphQLClient
from devtools.ports import free_port
from devtools.read_model_check import read_models, replay_log
from devtools.redis_cluster import LocalCluster, local_cluster
from devtools.servers import running_server
from tests.support.consistency_tokens import versions_of
from tests.support.pipeline_waits import settled_statuses, until_projected, until_relayed
from tests.support.shop_traffic import Traffic

pytestmark = pytest.mark.slow

# {p0} and {p1} hash to slots of the third node, {p2} of the second, {p3} of the first:
# four partitions put streams on every node of a three-node cluster.
PARTITIONS = 4
WIRING = "the bootstrap must call create_redis(..., cluster=settings.redis_cluster)"


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[LocalCluster]:
    # Not under pytest's base directory, which another test session may prune (conftest.py).
    with (
        tempfile.TemporaryDirectory(prefix="shop-redis-cluster-") as folder,
        local_cluster(Path(folder)) as cluster,
    ):
        yield cluster


@pytest.fixture
def cluster_settings(settings: Settings, redis_cluster: LocalCluster) -> Settings:
    """The test's fresh databases, with a Redis Cluster as the transport."""
    overrides = {"redis_url": redis_cluster.url, "redis_cluster": True}
    return Settings(**(settings.model_dump() | overrides | {"stream_partitions": PARTITIONS}))


@contextlib.asynccontextmanager
async def announcements(url: str, channel: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
    """Announcements on the changes channel, heard through a subscription of our own."""
    client = create_redis(url, timeout_s=5, cluster=True)
    heard: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def listen(pubsub: Any) -> None:
        async for message in pubsub.listen():
            heard.put_nowait(json.loads(message["data"]))

    try:
        async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(channel)
            task = asyncio.create_task(listen(pubsub))
            try:
                yield heard
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    finally:
        await client.aclose()


def partition_keys(settings: Settings, partition: int) -> list[str]:
    prefix = settings.redis_prefix
    return [
        stream_key(prefix, partition),
        published_key(prefix, partition),
        *(acked_key(prefix, partition, p.name) for p in PROJECTIONS),
        *(f"{prefix}:lease:{p.name}:{{p{partition}}}" for p in PROJECTIONS),
    ]


def assert_partitions_spread_over_nodes(settings: Settings, cluster: LocalCluster) -> None:
    """Each partition's keys share one slot, exist on the node serving it, and the
    partitions use every node."""
    nodes = set()
    for partition in range(settings.stream_partitions):
        keys = partition_keys(settings, partition)
        with contextlib.closing(cluster.client(cluster.ports[0])) as any_node:
            slots = {any_node.cluster("KEYSLOT", key) for key in keys}
        assert len(slots) == 1, f"partition {partition} spans slots {slots}"
        port = cluster.node_of_slot(int(slots.pop()))
        with contextlib.closing(cluster.client(port)) as node:
            # A lease may lapse for a moment on a busy machine before its worker takes it again.
            deadline = time.monotonic() + 15
            while node.exists(*keys) < len(keys) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert node.exists(*keys) == len(keys), f"keys of partition {partition} not on {port}"
        nodes.add(port)
    assert nodes == set(cluster.ports)


async def test_the_pipeline_runs_end_to_end_on_a_redis_cluster(
    cluster_settings: Settings, redis_cluster: LocalCluster, spare_read_engine: AsyncEngine
) -> None:
    async with (
        running_server(cluster_settings) as server,
        httpx.AsyncClient(timeout=60) as http,
        open_api(cluster_settings) as process,
    ):
        stores = process.stores
        assert isinstance(stores.redis, RedisCluster), WIRING
        gql = GraphQLClient(server.graphql_url, http)
        traffic = Traffic(gql, seed=7)
        await traffic.set_up()
        await traffic.run(96)

        await until_projected(stores)
        await replay_log(stores.write_engine, spare_read_engine)
        assert await read_models(stores.read_engine) == await read_models(spare_read_engine)
        assert_partitions_spread_over_nodes(cluster_settings, redis_cluster)
        await assert_no_lag(stores)
        await assert_the_change_feed_announces(process, gql, traffic, redis_cluster)
        await ping(stores.redis)


async def assert_no_lag(stores: Stores) -> None:
    """Every projection LIVE with no lag (waiting a little for the last acknowledgements)."""
    statuses = await settled_statuses(stores)
    assert [(st.name, st.lag_events, st.state) for st in statuses] == [
        (p.name, 0, "LIVE") for p in PROJECTIONS
    ]
    assert all(st.events_applied > 0 for st in statuses)


async def assert_the_change_feed_announces(
    process: Api, gql: GraphQLClient, traffic: Traffic, cluster: LocalCluster
) -> None:
    """A projector's PUBLISH reaches subscribers on the cluster, and read-your-writes waits
    end on it."""
    await asyncio.wait_for(process.services.changes.connected.wait(), 10)
    channel = changes_channel(process.settings.redis_prefix)
    async with announcements(cluster.url, channel) as heard:
        order = await gql.order(traffic.customers[0], (traffic.products[0], 1))
        result = await process.services.catch_up.wait(
            versions_of(process, order["consistencyToken"]),
            PROJECTIONS,
            10,
        )
        assert result.caught_up, result
        assert result.waited_ms < 5000, result
        async with process.services.changes.watch(["order_view"]) as watch:
            paid = await gql.ok(PAY_ORDER, orderId=order["orderId"])
            assert await watch.wait(10), "the change feed heard no announcement"
        result = await process.services.catch_up.wait(
            versions_of(process, paid["consistencyToken"]),
            PROJECTIONS,
            10,
        )
        assert result.caught_up, result
        announced: set[str] = set()
        while str(order_key(UUID(order["orderId"]))) not in announced:
            message = await asyncio.wait_for(heard.get(), 10)
            if message["projection"] == "order_view":
                announced.update(message["keys"])


async def test_a_node_restarted_empty_loses_no_event(
    cluster_settings: Settings, redis_cluster: LocalCluster, spare_read_engine: AsyncEngine
) -> None:
    """Entries relayed but not yet consumed vanish with a node that restarts without its
    data. As with a single Redis restarted empty, the relay must notice and send the log
    again, even though its epoch key lives on another node."""
    command_role = Settings(**(cluster_settings.model_dump() | {"role": Role.COMMAND}))
    async with (
        running_server(command_role) as server,  # mutations only: no relay, no projectors
        httpx.AsyncClient(timeout=60) as http,
        open_stores(cluster_settings) as stores,
    ):
        assert isinstance(stores.redis, RedisCluster), WIRING
        traffic = Traffic(GraphQLClient(server.graphql_url, http), seed=11)
        async with running_loops([OutboxRelay(stores.write_engine, stores.redis, stores.settings)]):
            await traffic.set_up(customers=4, products=4)
            await traffic.run(48)
            await until_relayed(stores)  # in the streams, and nobody has read them
            prefix = cluster_settings.redis_prefix
            # The node of some partitions, but not of the relay's (single) epoch key.
            epoch_node = redis_cluster.node_of_key(f"{prefix}:epoch")
            victim = next(
                port
                for p in range(PARTITIONS)
                if (port := redis_cluster.node_of_key(stream_key(prefix, p))) != epoch_node
            )
            await asyncio.to_thread(redis_cluster.restart_empty, victim)
            async with running_loops(
                [ProjectionRunner(PROJECTIONS, stores.read_engine, stores.redis, stores.settings)]
            ):
                await until_projected(stores, timeout_s=30)
                await assert_no_lag(stores)
        await replay_log(stores.write_engine, spare_read_engine)
        assert await read_models(stores.read_engine) == await read_models(spare_read_engine)


async def test_create_redis_gives_a_cluster_client_when_asked() -> None:
    cluster = create_redis("redis://127.0.0.1:7000/0", timeout_s=1.5, cluster=True)
    single = create_redis("redis://127.0.0.1:7000/0", timeout_s=1.5)
    try:
        assert isinstance(cluster, RedisCluster)
        assert isinstance(single, Redis)
        kwargs = cluster.get_connection_kwargs()
        assert kwargs["decode_responses"] is True
        assert kwargs["socket_connect_timeout"] == 1.5
        assert kwargs["socket_timeout"] == 10.0  # reads may take longer on a busy host
        assert kwargs["protocol"] in (None, 2)
    finally:
        await cluster.aclose()
        await single.aclose()


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOP_REDIS_CLUSTER", raising=False)
    assert load_settings().redis_cluster is False
    monkeypatch.setenv("SHOP_REDIS_CLUSTER", "true")
    monkeypatch.setenv("SHOP_REDIS_URL", "redis://127.0.0.1:7000/0")
    assert load_settings().redis_cluster is True


async def test_an_unreachable_cluster_raises_redis_errors() -> None:
    """Callers treat RedisError as an outage and retry; redis-py's own cluster exceptions
    are not RedisErrors, so the adapter must translate them (commands and pub/sub)."""
    client = create_redis(f"redis://127.0.0.1:{free_port()}/0", timeout_s=1, cluster=True)
    try:
        with pytest.raises(RedisError):
            await client.get("key")
        with pytest.raises(RedisError):
            await ping(client)
        pipe = client.pipeline(transaction=False)
        pipe.get("a")
        with pytest.raises(RedisError):
            await pipe.execute()
        with pytest.raises(RedisError):
            async with client.pubsub() as pubsub:
                await pubsub.subscribe("channel")
    finally:
        await client.aclose()


async def test_a_fresh_cluster_client_can_subscribe_first(redis_cluster: LocalCluster) -> None:
    """The change feed subscribes before the client has run any command."""
    client = create_redis(redis_cluster.url, timeout_s=2, cluster=True)
    try:
        async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe("test:changes")
            await client.publish("test:changes", "hello")
            message = None
            for _ in range(50):
                message = await pubsub.get_message(timeout=0.1)
                if message is not None:
                    break
            assert message is not None
            assert message["data"] == "hello"
    finally:
        await client.aclose()


async def test_readiness_names_a_mode_mismatch(redis_cluster: LocalCluster) -> None:
    single = create_redis(redis_cluster.url, timeout_s=2)
    cluster = create_redis(redis_cluster.url, timeout_s=2, cluster=True)
    try:
        with pytest.raises(RedisModeError, match="SHOP_REDIS_CLUSTER"):
            await ping(single)
        await ping(cluster)
    finally:
        await single.aclose()
        await cluster.aclose()
