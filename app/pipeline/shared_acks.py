"""Shared acknowledgements: a worker's consumers acknowledge together.

Each projection reads a partition through its own consumer group, so one stream entry is
read, applied and acknowledged once per projection. The applying is already shared (one
group-commit statement, `shared_batches.py`); the acknowledgements were four Redis round
trips per entry. The consumers that one statement released resume in the same step of the
event loop, so what they submit in that step goes in one script call per partition: per
consumer, `XACK` on its group, the count of what was acknowledged (for lag), and its
announcement; and the calls of every partition in one round trip (a pipeline). One call
touches one partition's keys only (one hash slot: a Redis Cluster takes it, sending each
call to its node).

Every acknowledgement follows its own commit, as before; a call that fails fails every
consumer of its partition, and each reads its pending entries again (the guards skip them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.adapters.redis import RedisClient

# KEYS[1]: the partition's stream; KEYS[1 + n]: the acknowledged count of the n-th block.
# ARGV[1]: the channel; then per block: the group, the announcement ('' for none), how many
# entry ids, the ids. The channel is not a key: pub/sub reaches every node of a cluster.
_ACK = """
local at = 2
for n = 2, #KEYS do
  local group, said, count = ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2])
  local acked = redis.call('XACK', KEYS[1], group, unpack(ARGV, at + 3, at + 2 + count))
  redis.call('INCRBY', KEYS[n], acked)
  if said ~= '' then redis.call('PUBLISH', ARGV[1], said) end
  at = at + 3 + count
end
return at
"""
ACK_CHUNK = 1000
"""Entry ids a block holds at most (Lua's `unpack` has a limit)."""


@dataclass
class _Ack:
    group: str
    acked: str  # the key counting what the group acknowledged
    entry_ids: Sequence[str]
    announcement: str
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class SharedAcks:
    """The acknowledgements of a worker's consumers: one script call per partition, all the
    partitions of one step of the event loop in one round trip (a pipeline)."""

    def __init__(self, redis: RedisClient, channel: str) -> None:
        self.redis = redis
        self.channel = channel
        self._waiting: dict[str, list[_Ack]] = {}  # by stream
        self._sending: set[asyncio.Task[None]] = set()

    async def acknowledge(
        self, stream: str, group: str, acked: str, entry_ids: Sequence[str], announcement: str
    ) -> None:
        """XACK `entry_ids` for `group`, add their number to `acked`, then publish the
        announcement (unless empty), with what other consumers submit in this step. Returns
        once Redis has done it; raises what the call for this stream raised."""
        ack = _Ack(group, acked, entry_ids, announcement)
        if not self._waiting:
            # Sent in its own task: a consumer cancelled meanwhile does not take the others'
            # acknowledgements with it (its batch committed: acknowledging it is right).
            task = asyncio.create_task(self._send(), name="acknowledge")
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
        self._waiting.setdefault(stream, []).append(ack)
        await ack.done

    async def _send(self) -> None:
        waiting, self._waiting = self._waiting, {}
        pipe = self.redis.pipeline(transaction=False)
        for stream, acks in waiting.items():
            keys, args = [stream], [self.channel]
            for ack in acks:
                ids = list(ack.entry_ids)
                for start in range(0, len(ids), ACK_CHUNK):
                    last = start + ACK_CHUNK >= len(ids)
                    chunk = ids[start : start + ACK_CHUNK]
                    keys.append(ack.acked)
                    args += [ack.group, ack.announcement if last else "", str(len(chunk)), *chunk]
            # EVAL, not EVALSHA: a cluster pipeline cannot load scripts, and Redis keeps the
            # compiled script by its digest anyway.
            pipe.eval(_ACK, len(keys), *keys, *args)
        try:
            results = await pipe.execute(raise_on_error=False)
        except Exception as error:
            results = [error] * len(waiting)
        except BaseException:  # cancelled (the worker stops): so are its consumers' waits
            for acks in waiting.values():
                for ack in acks:
                    ack.done.cancel()
            raise
        for acks, result in zip(waiting.values(), results, strict=True):
            for ack in acks:
                if ack.done.done():
                    continue
                if isinstance(result, Exception):
                    ack.done.set_exception(result)
                else:
                    ack.done.set_result(None)
