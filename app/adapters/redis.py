"""The Redis client used for streams, pub/sub and readiness checks: one server, or a Cluster.

On Redis Cluster (SHOP_REDIS_CLUSTER) every key the application updates together is in one
slot: the keys of a partition carry its hash tag (`{p3}`, see app.events.streams), so a
partition's stream, counters and leases live on one node and the Lua scripts touching them
stay within a slot. The pipelines of the relay and of the status span partitions, hence
slots: redis-py's cluster pipeline sends each command to the node of its key (they are not
transactions, so nothing requires one slot there).
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias, overload

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode, ClusterPubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError

RedisClient: TypeAlias = Redis | RedisCluster

# The single-server client's pool has no limit; a cluster client's defaults to 100
# connections per node and then fails at once (it does not wait). Every consumer holds a
# connection through its blocking XREADGROUP, so allow as many as Redis accepts by default
# (maxclients 10000).
_MAX_CONNECTIONS_PER_NODE = 10_000


class ClusterUnavailableError(RedisConnectionError):
    """No node of the cluster answers, or the nodes do not cover every slot.

    redis-py raises RedisClusterException for this, which is not a RedisError; callers
    handle a Redis outage by catching RedisError, so the cluster client raises this instead.
    """


class RedisModeError(RedisError):
    """The server is not in the mode SHOP_REDIS_CLUSTER says, or the cluster is not ok."""


class _ClusterPubSub(ClusterPubSub):
    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        # ClusterPubSub picks its node from the client's slot map, which is empty until the
        # client has run a command (KeyError) or after it closed its connections: load it.
        await self.cluster.initialize()
        return await super().execute_command(*args, **kwargs)


class ShopRedisCluster(RedisCluster):
    """redis-py's cluster client, raising RedisError subclasses for an unreachable cluster
    and able to subscribe before it has run any other command."""

    async def initialize(
        self,
        additional_startup_nodes_info: list[tuple[str, int]] | None = None,
        last_failed_node_name: str | None = None,
    ) -> RedisCluster:
        try:
            return await super().initialize(additional_startup_nodes_info, last_failed_node_name)
        except RedisClusterException as error:
            raise ClusterUnavailableError(str(error)) from error

    def pubsub(
        self,
        node: ClusterNode | None = None,
        host: str | None = None,
        port: int | None = None,
        **kwargs: Any,
    ) -> ClusterPubSub:
        return _ClusterPubSub(self, node=node, host=host, port=port, **kwargs)


@overload
def create_redis(url: str, *, timeout_s: float, cluster: Literal[False] = False) -> Redis: ...
@overload
def create_redis(url: str, *, timeout_s: float, cluster: Literal[True]) -> RedisCluster: ...
@overload
def create_redis(url: str, *, timeout_s: float, cluster: bool) -> RedisClient: ...
def create_redis(url: str, *, timeout_s: float, cluster: bool = False) -> RedisClient:
    """A client that fails fast while Redis is down and reconnects by itself when it is back.

    With `cluster`, `url` names one node (redis:// or rediss://, database 0); the client
    learns the others from it and follows slots as they move.
    """
    if cluster:
        # No retry_on_timeout here: the cluster client retries timeouts and connection
        # errors a few times itself, refreshing its slot map, so it follows a failover.
        return ShopRedisCluster.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=timeout_s,
            socket_timeout=_read_timeout(timeout_s),
            health_check_interval=30,
            max_connections=_MAX_CONNECTIONS_PER_NODE,
        )
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=timeout_s,
        socket_timeout=_read_timeout(timeout_s),
        health_check_interval=30,
        retry_on_timeout=False,
    )


def _read_timeout(connect_timeout_s: float) -> float:
    # Connecting fails fast when Redis is down; an answer may take longer on a busy host,
    # and a blocking XREADGROUP waits up to a second by design. Readiness checks bound
    # themselves (see app.runtime.bootstrap.readiness).
    return max(10.0, connect_timeout_s)


async def ping(redis: RedisClient) -> None:
    """Raise unless Redis answers PING, in the mode the client expects.

    A single-server client pointed at a Cluster node would pass PING yet fail on the keys
    other nodes serve (MOVED), so the server's mode is checked too. On a Cluster every
    primary must answer and the cluster must report `cluster_state:ok`.
    """
    if isinstance(redis, RedisCluster):
        await redis.ping(target_nodes=RedisCluster.PRIMARIES)
        state = (await redis.cluster_info()).get("cluster_state")
        if state != "ok":
            raise RedisModeError(f"cluster_state is {state!r}, not 'ok'")
        return
    try:
        await redis.ping()
    except RedisConnectionError:
        # After an outage the pool still holds connections Redis closed meanwhile; the first
        # command on one fails and drops it. That is not Redis being down: ask once more.
        await redis.ping()
    info = await redis.info("cluster")
    if int(info.get("cluster_enabled", 0)):
        raise RedisModeError("Redis runs in cluster mode: set SHOP_REDIS_CLUSTER=true")
