"""Leases in Redis: each (projection, partition) is consumed by one worker at a time.

Workers announce themselves with a heartbeat and each takes about its fair share of the
units, so several `shop worker` processes split the work. A lease expires unless renewed; a
dead worker's units are free again within the lease time and another worker takes them.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from app.adapters.redis import RedisClient
from app.projections.names import ProjectionName

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True, order=True)
class Unit:
    """One projection's share of one partition."""

    projection: ProjectionName
    partition: int


class Leases:
    """This worker's view of who holds which unit."""

    def __init__(self, redis: RedisClient, prefix: str, worker_id: str, ttl_s: float) -> None:
        self.redis = redis
        self.prefix = prefix
        self.worker_id = worker_id
        self.ttl_ms = int(ttl_s * 1000)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def _key(self, unit: Unit) -> str:
        return f"{self.prefix}:lease:{unit.projection}:{{p{unit.partition}}}"

    @property
    def _workers_key(self) -> str:
        return f"{self.prefix}:workers"

    async def heartbeat(self) -> int:
        """Say this worker is alive; return how many workers are."""
        now_ms = int(time.time() * 1000)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(self._workers_key, {self.worker_id: now_ms})
        pipe.zremrangebyscore(self._workers_key, 0, now_ms - 3 * self.ttl_ms)
        pipe.zcard(self._workers_key)
        *_, alive = await pipe.execute()
        return max(int(alive), 1)

    def fair_share(self, units: int, workers: int) -> int:
        return math.ceil(units / workers)

    async def acquire(self, unit: Unit) -> bool:
        return bool(await self.redis.set(self._key(unit), self.worker_id, nx=True, px=self.ttl_ms))

    async def renew(self, unit: Unit) -> bool:
        return bool(await self._renew(keys=[self._key(unit)], args=[self.worker_id, self.ttl_ms]))

    async def release(self, unit: Unit) -> None:
        await self._release(keys=[self._key(unit)], args=[self.worker_id])

    async def leave(self) -> None:
        await self.redis.zrem(self._workers_key, self.worker_id)

    async def holder(self, unit: Unit) -> str | None:
        """Which worker holds the unit now, if any."""
        value = await self.redis.get(self._key(unit))
        return str(value) if value is not None else None
