"""What one process shares between requests and background loops (built by app.bootstrap)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from app.adapters.redis import RedisClient
from app.security.tokens import Authenticator
from app.settings import Settings
from app.single_flight import SingleFlight

if TYPE_CHECKING:
    # Only for annotations: the read side must not import the write side at run time.
    from app.projections.change_feed import ChangeFeed
    from app.write.bus import CommandBus


@dataclass(frozen=True)
class Services:
    """Engines, clients and the command bus of one process."""

    settings: Settings
    write_engine: AsyncEngine
    read_engine: AsyncEngine
    redis: RedisClient
    bus: CommandBus
    metrics: CollectorRegistry
    changes: ChangeFeed
    shared_reads: SingleFlight = field(default_factory=SingleFlight)

    @cached_property
    def authenticator(self) -> Authenticator:
        """Checks the credentials requests carry (open mode: everyone is an admin)."""
        return Authenticator(self.settings)

    @cached_property
    def query_engine(self) -> AsyncEngine:
        """The read store for queries: each statement on its own (no BEGIN and ROLLBACK
        around a single SELECT); the pool is the read engine's."""
        return self.read_engine.execution_options(isolation_level="AUTOCOMMIT")
