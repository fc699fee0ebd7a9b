"""The one serialization of events: JSON payloads keyed by type name and schema version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import TypeAdapter

from app.events.types import EVENT_TYPES, Event

_ADAPTERS: dict[str, tuple[type[Event], TypeAdapter[Any]]] = {
    cls.type_name(): (cls, TypeAdapter(cls)) for cls in EVENT_TYPES
}


class UnknownEventError(ValueError):
    """An event type or schema version this code cannot read."""


@dataclass(frozen=True)
class RecordedEvent:
    """An event with its place in history: which aggregate, which version, when, which id."""

    event_id: UUID
    aggregate_version: int
    occurred_at: datetime
    event: Event

    @property
    def aggregate_type(self) -> str:
        return self.event.aggregate_type

    @property
    def aggregate_id(self) -> UUID:
        return self.event.aggregate_id

    @property
    def event_type(self) -> str:
        return self.event.type_name()

    @property
    def schema_version(self) -> int:
        return self.event.schema_version


def encode(event: Event) -> dict[str, Any]:
    """The event's payload as JSON-ready data."""
    _, adapter = _ADAPTERS[event.type_name()]
    payload: dict[str, Any] = adapter.dump_python(event, mode="json")
    return payload


def decode(event_type: str, schema_version: int, payload: dict[str, Any]) -> Event:
    """Rebuild an event from its stored payload; refuse types and versions we do not know."""
    try:
        cls, adapter = _ADAPTERS[event_type]
    except KeyError:
        raise UnknownEventError(f"unknown event type {event_type!r}") from None
    if schema_version != cls.schema_version:
        raise UnknownEventError(
            f"{event_type} schema version {schema_version} (this code reads {cls.schema_version})"
        )
    event: Event = adapter.validate_python(payload)
    return event
