"""The Redis client used for streams, pub/sub and readiness checks."""

from __future__ import annotations

from redis.asyncio import Redis


def create_redis(url: str, *, timeout_s: float) -> Redis:
    """A client that fails fast while Redis is down and reconnects by itself when it is back."""
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        health_check_interval=30,
        retry_on_timeout=False,
    )


async def ping(redis: Redis) -> None:
    """Raise unless Redis answers PING."""
    await redis.ping()
