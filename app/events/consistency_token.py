"""Consistency tokens: which aggregate versions a command produced, as an opaque string.

The write side makes them; the read side waits until the projections concerned have applied
those versions. The format is base64url JSON, versioned, so it can change without breaking
tokens already handed out.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

_FORMAT = 1
MAX_TOKEN_LENGTH = 8192


class MalformedTokenError(ValueError):
    """The string is not a consistency token this service made."""


@dataclass(frozen=True, order=True)
class AggregateVersion:
    """An aggregate at a version, and the types of the events that brought it there.

    'Applied' means a projection following this aggregate has applied at least this version;
    the event types tell which projections the events concern.
    """

    aggregate_type: str
    aggregate_id: UUID
    version: int
    event_types: tuple[str, ...] = ()


def encode_token(versions: Iterable[AggregateVersion]) -> str:
    """The token for these versions: per aggregate the highest version and all event types."""
    merged: dict[UUID, AggregateVersion] = {}
    for item in versions:
        seen = merged.get(item.aggregate_id)
        types = tuple(sorted({*item.event_types, *(seen.event_types if seen else ())}))
        version = max(item.version, seen.version if seen else 0)
        merged[item.aggregate_id] = AggregateVersion(
            item.aggregate_type, item.aggregate_id, version, types
        )
    body = {
        "f": _FORMAT,
        "a": [
            [v.aggregate_type, v.aggregate_id.hex, v.version, list(v.event_types)]
            for v in sorted(merged.values())
        ],
    }
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> tuple[AggregateVersion, ...]:
    """The versions a token stands for; MalformedTokenError if it is not one of ours."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise MalformedTokenError("consistency token is empty or too long")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
        if body["f"] != _FORMAT:
            raise MalformedTokenError(f"consistency token format {body['f']} is not supported")
        return tuple(
            AggregateVersion(
                _text(kind), UUID(hex=_text(hex_id)), _positive(version), _texts(event_types)
            )
            for kind, hex_id, version, event_types in body["a"]
        )
    except MalformedTokenError:
        raise
    except (
        binascii.Error, UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError
    ) as error:  # fmt: skip
        raise MalformedTokenError("not a consistency token issued by this service") from error


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _texts(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError("expected a list")
    return tuple(_text(item) for item in value)


def _positive(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError("version must be a positive integer")
    return value
