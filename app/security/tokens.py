"""Bearer JWTs: checking them (HS256 with a secret, or keys from a JWKS URL) and minting them
for local use (`shop token`)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping

import jwt

from app.config.settings import Settings
from app.security.principal import LOCAL_ADMIN, Principal, UserRole

_ASYMMETRIC = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]
_REQUIRED_CLAIMS = ["exp", "sub", "role"]
MAX_TOKEN_CHARS = 8192

log = logging.getLogger("app.security.tokens")


class InvalidCredentials(Exception):
    """The credentials sent are unusable; the message says why, without echoing them."""


class Authenticator:
    """Turns an `Authorization` value into a principal, per the configured way to check it."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        # Keys live as long as the key set they came in (no per-key cache, which never
        # expires): a key the provider withdraws stops being trusted within the lifespan.
        self._jwks = (
            jwt.PyJWKClient(settings.jwt_jwks_url, lifespan=settings.jwt_jwks_cache_s, timeout=5)
            if settings.jwt_jwks_url
            else None
        )

    @property
    def open(self) -> bool:
        return self._settings.open_access

    async def principal(self, authorization: str | None) -> Principal | None:
        """The caller named by a bearer token; None without one. Open mode: the local admin."""
        if self.open:
            return LOCAL_ADMIN
        if authorization is None or not authorization.strip():
            return None
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise InvalidCredentials("send credentials as `Authorization: Bearer <token>`")
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidCredentials("the token is too long")
        return await self.verify(token)

    async def verify(self, token: str) -> Principal:
        settings = self._settings
        audience = settings.jwt_audience
        try:
            if self._jwks is not None:
                key: object = await _provider_key(self._jwks, token)
                algorithms = _ASYMMETRIC
            else:
                assert settings.jwt_secret is not None
                key = settings.jwt_secret.get_secret_value()
                algorithms = ["HS256"]
            claims = jwt.decode(
                token,
                key,  # type: ignore[arg-type]
                algorithms=algorithms,
                audience=audience,
                issuer=settings.jwt_issuer,
                leeway=settings.jwt_leeway_s,
                options={"require": _required_claims(settings), "verify_aud": bool(audience)},
            )
        except jwt.ExpiredSignatureError as error:
            raise InvalidCredentials("the token has expired") from error
        except jwt.InvalidTokenError as error:
            raise InvalidCredentials(f"the token is invalid: {_reason(error)}") from error
        return principal_from_claims(claims)


async def _provider_key(jwks: jwt.PyJWKClient, token: str) -> object:
    """The identity provider's key that signed the token. A key set that cannot be fetched or
    read refuses the caller (401) and warns the operator; it is no server error."""
    try:
        # PyJWKClient fetches (and caches) the key set with blocking I/O.
        return (await asyncio.to_thread(jwks.get_signing_key_from_jwt, token)).key
    except jwt.PyJWKClientConnectionError as error:
        log.warning("the JWKS endpoint cannot be reached: %s", error)
        raise InvalidCredentials("the identity provider's keys cannot be fetched") from error
    except (jwt.PyJWKSetError, ValueError) as error:  # not JSON, or no usable key in it
        log.warning("the JWKS endpoint sent an unusable key set: %s", error)
        raise InvalidCredentials("the identity provider's key set cannot be used") from error
    except jwt.PyJWKClientError as error:
        raise InvalidCredentials("the token's signing key cannot be found") from error


def _required_claims(settings: Settings) -> list[str]:
    """Claims a token must carry: the audience and issuer too, when they are configured."""
    configured = {"aud": settings.jwt_audience, "iss": settings.jwt_issuer}
    return _REQUIRED_CLAIMS + [claim for claim, value in configured.items() if value]


def principal_from_claims(claims: Mapping[str, object]) -> Principal:
    """The principal a verified token's claims name; refuses claims that do not fit."""
    role, subject = claims.get("role"), claims.get("sub")
    exp = claims.get("exp")  # checked by PyJWT: a number, when required
    expires_at = float(exp) if isinstance(exp, int | float) else None
    if role not in (UserRole.ADMIN.value, UserRole.CUSTOMER.value):
        raise InvalidCredentials("the token's role must be `admin` or `customer`")
    if not isinstance(subject, str) or not subject:
        raise InvalidCredentials("the token has no subject")
    if role == UserRole.ADMIN.value:
        return Principal(UserRole.ADMIN, subject, expires_at=expires_at)
    try:
        customer_id = uuid.UUID(subject)
    except ValueError:
        raise InvalidCredentials("a customer token's subject must be the customer id") from None
    return Principal(UserRole.CUSTOMER, subject, customer_id, expires_at)


def mint_token(
    secret: str,
    role: UserRole,
    subject: str,
    ttl_s: int,
    *,
    audience: str | None = None,
    issuer: str | None = None,
) -> str:
    """An HS256 token for local use (`shop token`)."""
    now = int(time.time())
    claims: dict[str, object] = {"sub": subject, "role": role.value, "iat": now, "exp": now + ttl_s}
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256")


def _reason(error: jwt.InvalidTokenError) -> str:
    text = str(error) or type(error).__name__
    return text[:120]
