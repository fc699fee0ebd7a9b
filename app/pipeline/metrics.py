"""Pipeline gauges for /metrics: the numbers `shop projections status` shows, and the outbox."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.redis import RedisClient
from app.config.settings import Settings
from app.pipeline import event_log
from app.pipeline.status import projection_statuses
from app.projections.registry import PROJECTIONS


class PipelineMetrics:
    """Gauges refreshed on each scrape."""

    def __init__(
        self,
        registry: CollectorRegistry,
        write_engine: AsyncEngine,
        read_engine: AsyncEngine,
        redis: RedisClient,
        settings: Settings,
    ) -> None:
        self.write_engine = write_engine
        self.read_engine = read_engine
        self.redis = redis
        self.settings = settings
        label = ("projection",)
        self.lag_events = Gauge("shop_projection_lag_events", "Published events not yet applied",
                                label, registry=registry)  # fmt: skip
        self.lag_seconds = Gauge("shop_projection_lag_seconds", "Age of the oldest such event",
                                 label, registry=registry)  # fmt: skip
        self.applied = Gauge("shop_projection_events_applied", "Events applied", label,
                             registry=registry)  # fmt: skip
        self.parked = Gauge("shop_projection_dead_letters", "Events parked", label,
                            registry=registry)  # fmt: skip
        self.backlog = Gauge("shop_outbox_backlog", "Committed events waiting for the relay",
                             registry=registry)  # fmt: skip

    async def refresh(self) -> None:
        # The backlog first: it needs only PostgreSQL, and while Redis is down it is the
        # number that shows the projections falling behind.
        async with self.write_engine.connect() as connection:
            self.backlog.set(await event_log.unpublished(connection))
        s = self.settings
        statuses = await projection_statuses(
            self.read_engine, self.redis, s.redis_prefix, s.stream_partitions, PROJECTIONS
        )
        for status in statuses:
            self.lag_events.labels(status.name).set(status.lag_events)
            self.lag_seconds.labels(status.name).set(status.lag_seconds)
            self.applied.labels(status.name).set(status.events_applied)
            self.parked.labels(status.name).set(status.dead_letters)
