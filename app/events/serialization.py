"""The one serialization of events: JSON payloads keyed by type name and schema version."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from pydantic import TypeAdapter

from app.events.types import EVENT_TYPES, Event
from app.events.upcasting import raise_to

_ADAPTERS: dict[str, tuple[type[Event], TypeAdapter[Any]]] = {
    cls.type_name(): (cls, TypeAdapter(cls)) for cls in EVENT_TYPES
}


class UnknownEventError(ValueError):
    """An event type or schema version this code cannot read."""


class EventRecord(Protocol):
    """What the read side needs of an event with its place in history: the envelope, the
    payload's JSON text, and the event itself for the few places that read its fields."""

    @property
    def event_id(self) -> UUID: ...
    @property
    def event_type(self) -> str: ...
    @property
    def aggregate_type(self) -> str: ...
    @property
    def aggregate_id(self) -> UUID: ...
    @property
    def aggregate_version(self) -> int: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def payload_json(self) -> str: ...
    @property
    def event(self) -> Event: ...


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
    """Rebuild an event from its payload's JSON text (an older version upcast), parsed and
    validated in one pass; refuse types and versions we do not know."""
    try:
        _, adapter = _ADAPTERS[event_type]
    except KeyError:
        raise UnknownEventError(f"unknown event type {event_type!r}") from None
    event: Event = adapter.validate_json(upcast_json(event_type, schema_version, payload))
    return event


def current_version(event_type: str) -> int:
    """The schema version this code writes and reads `event_type` in; UnknownEventError for a
    type it does not know."""
    try:
        cls, _ = _ADAPTERS[event_type]
    except KeyError:
        raise UnknownEventError(f"unknown event type {event_type!r}") from None
    return cls.schema_version


def upcast_json(event_type: str, schema_version: int, payload: str | bytes) -> str | bytes:
    """A payload written as `schema_version`, as JSON text of the current version: as it is
    if it is current, raised through the type's upcasts if older (app/events/upcasting.py).
    UnknownEventError for a version this code cannot read: newer than it, or below 1."""
    current = current_version(event_type)
    if schema_version == current:
        return payload
    if schema_version > current:
        raise UnknownEventError(
            f"{event_type} schema version {schema_version} is newer than this code, which "
            f"reads up to v{current}: it waits for an upgrade of this service"
        )
    if schema_version < 1:
        raise UnknownEventError(f"{event_type} schema version {schema_version}")
    cls, _ = _ADAPTERS[event_type]
    return _compact(raise_to(cls.upcasts, current, schema_version, json.loads(payload)))


# The flat fields of a stream entry, in the order `stream_fields` and the relay's SQL give them.
STREAM_FIELD_NAMES = (
    "id", "type", "schema", "aggregate", "aggregate_id", "version", "at", "position", "payload"
)  # fmt: skip


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


# The values of `stream_fields`, in STREAM_FIELD_NAMES order, as PostgreSQL makes them from an
# outbox row (the relay builds a batch's entries in one statement; a test holds the two equal:
# the same text but the payload's, which PostgreSQL prints with spaces, and the time, which
# PostgreSQL prints in UTC).
STREAM_FIELDS_SQL = (
    "encode(uuid_send(event_id), 'hex')",
    "event_type",
    "schema_version::text",
    "aggregate_type",
    "encode(uuid_send(aggregate_id), 'hex')",
    "aggregate_version::text",
    "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')",
    "position::text",
    "payload::text",
)


def _compact(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))


@dataclass(slots=True, eq=False)
class StreamedEvent:
    """An event as a stream entry (or the log) carries it: the envelope read from the entry's
    flat fields and the payload as its JSON text, which the projections' SQL folds read as it
    is. The event object is decoded, and its payload validated, only when asked for (a dead
    letter, a test); a projector never does, so no Python runs per payload field. (Not frozen:
    a frozen dataclass pays for each field it sets, and a projector makes one per event.)"""

    event_id: UUID
    event_type: str
    schema_version: int
    aggregate_type: str
    aggregate_id: UUID
    aggregate_version: int
    occurred_at: datetime
    payload_json: str

    @property
    def event(self) -> Event:
        """The event, decoded from the payload (each time: no hot path asks)."""
        return decode_json(self.event_type, self.schema_version, self.payload_json)


_AGGREGATE_TYPES = {name: cls.aggregate_type for name, (cls, _) in _ADAPTERS.items()}


def from_stream_fields(fields: Mapping[str, str]) -> StreamedEvent:
    """The event a stream entry carries, in the current shape of its type (an older one is
    upcast); UnknownEventError for an entry this code cannot read: an unknown type, a schema
    version newer than this code, a missing or malformed envelope field, or an aggregate that
    is not the type's. The payload is checked when the event is decoded: the
    folds refuse a payload that is not JSON, which parks the entry after its retries."""
    try:
        event_type = fields["type"]
        cls, _ = _ADAPTERS[event_type]
    except KeyError:
        raise UnknownEventError(f"unknown event type {fields.get('type')!r}") from None
    try:
        schema_version = int(fields["schema"])
        aggregate_type = fields["aggregate"]
        if aggregate_type != _AGGREGATE_TYPES[event_type]:
            raise UnknownEventError(f"{event_type} of a {aggregate_type!r} aggregate")
        payload = fields["payload"]
        if not isinstance(payload, str):
            raise TypeError(f"payload is {type(payload).__name__}, not text")
        if schema_version != cls.schema_version:  # an older event is read in today's shape
            payload = str(upcast_json(event_type, schema_version, payload))
        return StreamedEvent(
            UUID(hex=fields["id"]),
            event_type,
            cls.schema_version,
            aggregate_type,
            UUID(hex=fields["aggregate_id"]),
            int(fields["version"]),
            datetime.fromisoformat(fields["at"]),
            payload,
        )
    except UnknownEventError:
        raise
    except (KeyError, ValueError, TypeError) as error:
        raise UnknownEventError(f"malformed stream entry: {error!r}") from error
