"""What every aggregate shares: an id, a version, and the events it recorded but did not store."""

from __future__ import annotations

from uuid import UUID

from app.events import Event
from app.write.domain.errors import ErrorCode, reject


class Aggregate:
    """A consistency boundary whose every change is an event and bumps its version by one."""

    def __init__(self, aggregate_id: UUID, version: int) -> None:
        self.id = aggregate_id
        self.version = version
        self.pending: list[tuple[int, Event]] = []

    def record(self, event: Event) -> None:
        """Note an event; the unit of work stores it with this version."""
        self.version += 1
        self.pending.append((self.version, event))

    def require_version(self, expected: int | None) -> None:
        """Optimistic concurrency: refuse if the caller saw another version."""
        if expected is not None and expected != self.version:
            raise reject(
                ErrorCode.VERSION_CONFLICT,
                f"expected version {expected}, but it is at version {self.version}",
                "expectedVersion",
            )
