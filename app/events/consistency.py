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
    """An aggregate at a version: 'applied' means at least this version is in the projection."""

    aggregate_type: str
    aggregate_id: UUID
    version: int


def encode_token(versions: Iterable[AggregateVersion]) -> str:
    """The token for these versions; only the highest version per aggregate is kept."""
    highest: dict[UUID, AggregateVersion] = {}
    for item in versions:
        if item.aggregate_id not in highest or highest[item.aggregate_id].version < item.version:
            highest[item.aggregate_id] = item
    body = {
        "f": _FORMAT,
        "a": [[v.aggregate_type, v.aggregate_id.hex, v.version] for v in sorted(highest.values())],
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
            AggregateVersion(_text(kind), UUID(hex=_text(hex_id)), _positive(version))
            for kind, hex_id, version in body["a"]
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


def _positive(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError("version must be a positive integer")
    return value
