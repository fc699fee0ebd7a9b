"""Consistency tokens: which aggregate versions a command produced, as an opaque string.

The write side makes them; the read side waits until the projections concerned have applied
those versions. A token is base64url JSON (versioned, so the format can change) and a MAC:
HMAC-SHA256 with the service's key over the JSON and the caller it was issued to. Nobody
without the key can make one, alter one, or use someone else's: a token is not an oracle for
ids its holder may not read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from uuid import UUID

_FORMAT = 2  # 1: unsigned (refused since tokens are signed)
MAX_TOKEN_LENGTH = 8192
MIN_KEY_BYTES = 32
_MAC_BYTES = 16
_PURPOSE = b"cqrs-shop consistency token\n"


class MalformedTokenError(ValueError):
    """The string is not a consistency token this service made for this caller."""


@dataclass(frozen=True)
class TokenKey:
    """The service's key for consistency tokens (kept out of reprs, so out of logs)."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_KEY_BYTES:
            raise ValueError(f"a token key needs at least {MIN_KEY_BYTES} bytes")


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


def _merged(versions: Iterable[AggregateVersion]) -> tuple[AggregateVersion, ...]:
    # Per aggregate the highest version and all event types, in a stable order.
    by_id: dict[UUID, AggregateVersion] = {}
    for item in versions:
        seen = by_id.get(item.aggregate_id)
        types = tuple(sorted({*item.event_types, *(seen.event_types if seen else ())}))
        version = max(item.version, seen.version if seen else 0)
        by_id[item.aggregate_id] = AggregateVersion(
            item.aggregate_type, item.aggregate_id, version, types
        )
    return tuple(sorted(by_id.values()))


def dump_versions(versions: Iterable[AggregateVersion]) -> list[list[object]]:
    """The versions, merged, as JSON (what a token holds; idempotency records keep it too)."""
    return [
        [v.aggregate_type, v.aggregate_id.hex, v.version, list(v.event_types)]
        for v in _merged(versions)
    ]


def load_versions(data: object) -> tuple[AggregateVersion, ...]:
    """The versions `dump_versions` wrote; TypeError or ValueError for anything else."""
    if not isinstance(data, list):
        raise TypeError("expected a list")
    return tuple(
        AggregateVersion(
            _text(kind), UUID(hex=_text(hex_id)), _positive(version), _texts(event_types)
        )
        for kind, hex_id, version, event_types in data
    )


def encode_token(versions: Iterable[AggregateVersion], key: TokenKey, caller: str) -> str:
    """The token for these versions, for this caller only (see `caller_identity`)."""
    body = {"f": _FORMAT, "a": dump_versions(versions)}
    return _seal(json.dumps(body, separators=(",", ":")).encode(), key, caller)


def decode_token(token: str, key: TokenKey, caller: str) -> tuple[AggregateVersion, ...]:
    """The versions a token stands for; MalformedTokenError unless this key made it for this
    caller. The MAC is checked before the JSON is parsed."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise MalformedTokenError("consistency token is empty or too long")
    body_text, _, mac_text = token.partition(".")
    body, mac = _unbase64(body_text), _unbase64(mac_text)
    if not hmac.compare_digest(mac, _mac(body, key, caller)):
        raise MalformedTokenError("not a consistency token issued by this service to this caller")
    try:
        fields = json.loads(body)
        if fields["f"] != _FORMAT:
            raise MalformedTokenError(f"consistency token format {fields['f']} is not supported")
        return load_versions(fields["a"])
    except MalformedTokenError:
        raise
    except (ValueError, KeyError, TypeError, RecursionError) as error:  # bad UTF-8 too
        raise MalformedTokenError("not a consistency token issued by this service") from error


def _seal(body: bytes, key: TokenKey, caller: str) -> str:
    return f"{_base64(body)}.{_base64(_mac(body, key, caller))}"


def _mac(body: bytes, key: TokenKey, caller: str) -> bytes:
    # The caller is hashed to a fixed length first, so no (caller, body) pair reads as another.
    # surrogatepass: a subject is any JSON string, lone surrogates included.
    who = hashlib.sha256(caller.encode("utf-8", "surrogatepass")).digest()
    return hmac.new(key.secret, _PURPOSE + who + body, hashlib.sha256).digest()[:_MAC_BYTES]


def _base64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unbase64(text: str) -> bytes:
    """Strict: only the one spelling `_base64` gives, so no two token strings mean the same."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError as error:  # binascii.Error, or a character that is not ASCII
        raise MalformedTokenError("not a consistency token issued by this service") from error
    if _base64(raw) != text:
        raise MalformedTokenError("not a consistency token issued by this service")
    return raw


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
