"""The one serialization of events: JSON payloads keyed by type name and schema version."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    # The payload's JSON text as it arrived, when it came from a stream entry or the log: the
    # projections' SQL folds read it as it is, with nothing encoded again.
    arrived_as: str | None = field(default=None, compare=False, repr=False)

    @property
    def payload_json(self) -> str:
        """The payload as JSON text: as it arrived, or encoded now."""
        return self.arrived_as if self.arrived_as is not None else _compact(encode(self.event))

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


def decode_json(event_type: str, schema_version: int, payload: str | bytes) -> Event:
    """Rebuild an event from its payload's JSON text, parsed and validated in one pass;
    refuse types and versions we do not know."""
    try:
        cls, adapter = _ADAPTERS[event_type]
    except KeyError:
        raise UnknownEventError(f"unknown event type {event_type!r}") from None
    if schema_version != cls.schema_version:
        raise UnknownEventError(
            f"{event_type} schema version {schema_version} (this code reads {cls.schema_version})"
        )
    event: Event = adapter.validate_json(payload)
    return event


def stream_fields(
    event_id: UUID,
    event_type: str,
    schema_version: int,
    aggregate_type: str,
    aggregate_id: UUID,
    version: int,
    occurred_at: datetime,
    position: int,
    payload: dict[str, Any] | str,
) -> dict[str, str]:
    """A stream entry: flat string fields, the payload as JSON (given as text, or encoded)."""
    return {
        "id": event_id.hex,
        "type": event_type,
        "schema": str(schema_version),
        "aggregate": aggregate_type,
        "aggregate_id": aggregate_id.hex,
        "version": str(version),
        "at": occurred_at.isoformat(),
        "position": str(position),
        "payload": payload if isinstance(payload, str) else _compact(payload),
    }


def _compact(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))


def from_stream_fields(fields: Mapping[str, str]) -> RecordedEvent:
    """The event a stream entry carries; UnknownEventError for what this code cannot read."""
    try:
        event = decode_json(fields["type"], int(fields["schema"]), fields["payload"])
        return RecordedEvent(
            UUID(hex=fields["id"]),
            int(fields["version"]),
            datetime.fromisoformat(fields["at"]),
            event,
            fields["payload"],
        )
    except UnknownEventError:
        raise
    except (KeyError, ValueError, TypeError) as error:
        raise UnknownEventError(f"malformed stream entry: {error}") from error
