"""Where events travel: Redis stream and counter names, and the partition of an aggregate.

Keys of one partition share a hash tag (`{p3}`), so on Redis Cluster a partition's stream and
counters live in one slot and can be updated together.
"""

from __future__ import annotations

from uuid import UUID


def partition_of(aggregate_id: UUID, partitions: int) -> int:
    """The partition an aggregate's events go to: all of them to the same one, in order."""
    return aggregate_id.int % partitions


def partition_sql(uuid_column: str, partitions: str) -> str:
    """`partition_of` as a PostgreSQL expression: the uuid's 128-bit integer modulo the number
    of partitions, folded 32 bits at a time so every step fits a bigint (partitions <= 2**31)."""
    hex_digits = f"encode(uuid_send({uuid_column}), 'hex')"
    words = [f"('x' || substr({hex_digits}, {1 + 8 * i}, 8))::bit(32)::bigint" for i in range(4)]
    expression = f"({words[0]} % {partitions})"
    for word in words[1:]:
        expression = f"(({expression} * 4294967296 + {word}) % {partitions})"
    return expression


def stream_key(prefix: str, partition: int) -> str:
    return f"{prefix}:events:{{p{partition}}}"


def published_key(prefix: str, partition: int) -> str:
    """How many entries the relay has added to the partition (for lag)."""
    return f"{prefix}:published:{{p{partition}}}"


def acked_key(prefix: str, partition: int, projection: str) -> str:
    """How many of the partition's entries a projection has acknowledged (for lag)."""
    return f"{prefix}:acked:{projection}:{{p{partition}}}"


def epoch_key(prefix: str, partition: int) -> str:
    """Set by the relay in the partition's slot; gone means the Redis (Cluster node) holding
    the partition lost its data, and the outbox must be sent again."""
    return f"{prefix}:epoch:{{p{partition}}}"


def changes_channel(prefix: str) -> str:
    """Pub/sub channel on which projectors announce the keys they changed."""
    return f"{prefix}:changes"


def group_name(projection: str) -> str:
    """Each projection reads every partition through its own consumer group."""
    return f"projection:{projection}"
