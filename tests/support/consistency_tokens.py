"""Consistency tokens in tests, read and made as the API does: with the service's key, for the
caller they are issued to (by default the local admin everyone is on an open server)."""

from __future__ import annotations

from collections.abc import Iterable

from app.events.consistency_token import AggregateVersion, decode_token, encode_token
from app.runtime.bootstrap import Api
from app.security.principal import LOCAL_ADMIN, Principal, caller_identity


def versions_of(
    api: Api, token: str, caller: Principal | None = LOCAL_ADMIN
) -> tuple[AggregateVersion, ...]:
    """The versions a token the caller was given names (MalformedTokenError if none)."""
    return decode_token(token, api.services.token_key, caller_identity(caller))


def token_for(
    api: Api, versions: Iterable[AggregateVersion], caller: Principal | None = LOCAL_ADMIN
) -> str:
    """A token for these versions, as the service would give the caller."""
    return encode_token(versions, api.services.token_key, caller_identity(caller))
