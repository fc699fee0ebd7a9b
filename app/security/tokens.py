"""Bearer JWTs: checking them (HS256 with a secret, or keys from a JWKS URL) and minting them
for local use (`shop token`)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping

import jwt

from app.config.settings import Settings
from app.security.principal import LOCAL_ADMIN, Principal, UserRole

_ASYMMETRIC = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]
_REQUIRED_CLAIMS = ["exp", "sub", "role"]
MAX_TOKEN_CHARS = 8192


class InvalidCredentials(Exception):
    """The credentials sent are unusable; the message says why, without echoing them."""


class Authenticator:
    """Turns an `Authorization` value into a principal, per the configured way to check it."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._jwks = (
            jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True, lifespan=300, timeout=5)
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
        try:
            if self._jwks is not None:
                # PyJWKClient fetches (and caches) keys with blocking I/O.
                signing_key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
                key: object = signing_key.key
                algorithms = _ASYMMETRIC
            else:
                assert settings.jwt_secret is not None
                key = settings.jwt_secret.get_secret_value()
                algorithms = ["HS256"]
            claims = jwt.decode(
                token,
                key,  # type: ignore[arg-type]
                algorithms=algorithms,
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
                leeway=settings.jwt_leeway_s,
                options={"require": _REQUIRED_CLAIMS, "verify_aud": bool(settings.jwt_audience)},
            )
        except jwt.ExpiredSignatureError as error:
            raise InvalidCredentials("the token has expired") from error
        except jwt.PyJWKClientError as error:
            raise InvalidCredentials("the token's signing key cannot be found") from error
        except jwt.InvalidTokenError as error:
            raise InvalidCredentials(f"the token is invalid: {_reason(error)}") from error
        return principal_from_claims(claims)


def principal_from_claims(claims: Mapping[str, object]) -> Principal:
    """The principal a verified token's claims name; refuses claims that do not fit."""
    role, subject = claims.get("role"), claims.get("sub")
    if role not in (UserRole.ADMIN.value, UserRole.CUSTOMER.value):
        raise InvalidCredentials("the token's role must be `admin` or `customer`")
    if not isinstance(subject, str) or not subject:
        raise InvalidCredentials("the token has no subject")
    if role == UserRole.ADMIN.value:
        return Principal(UserRole.ADMIN, subject)
    try:
        customer_id = uuid.UUID(subject)
    except ValueError:
        raise InvalidCredentials("a customer token's subject must be the customer id") from None
    return Principal(UserRole.CUSTOMER, subject, customer_id)


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
