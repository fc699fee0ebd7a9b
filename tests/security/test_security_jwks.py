"""Tokens checked against an identity provider's keys (SHOP_JWT_JWKS_URL) instead of a secret."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from app.config.settings import Settings, SettingsError, load_settings
from devtools.ports import free_port
from devtools.servers import ServerUnderTest, running_server
from tests.support.identity_provider import (
    IdentityProvider,
    identity_provider,
    self_signed_certificate,
)

CUSTOMERS = "{ customers(first: 1) { totalCount } }"
AUDIENCE = "https://shop.example.com"
ISSUER = "https://id.example.com/"
KEY_SET_LIFESPAN_S = 0.5


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


PROVIDER_KEY = rsa_key()
STRANGER_KEY = rsa_key()  # signs with the provider's key id, but is not the provider
NEXT_KEY = rsa_key()  # the provider's key after a rotation


@pytest.fixture
def trusted_certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 this process trusts (and its key)."""
    certificate, key = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate))
    return certificate, key


@pytest.fixture
def provider(trusted_certificate: tuple[Path, Path]) -> Iterator[IdentityProvider]:
    """An identity provider's JWKS endpoint on loopback, publishing PROVIDER_KEY as `k1`."""
    with identity_provider(*trusted_certificate) as serving:
        serving.keys["k1"] = PROVIDER_KEY
        yield serving


def checked_by(settings: Settings, jwks_url: str) -> Settings:
    """The test's settings with tokens checked against the keys at `jwks_url`."""
    update = {
        "jwt_jwks_url": jwks_url,
        "jwt_audience": AUDIENCE,
        "jwt_issuer": ISSUER,
        "jwt_jwks_cache_s": KEY_SET_LIFESPAN_S,
    }
    return settings.model_copy(update=update)


def signed(
    key: rsa.RSAPrivateKey,
    kid: str,
    role: str = "admin",
    aud: str | None = AUDIENCE,
    iss: str | None = ISSUER,
) -> str:
    claims = {"sub": "ops@example.com", "role": role, "exp": int(time.time()) + 600}
    claims |= {name: value for name, value in (("aud", aud), ("iss", iss)) if value is not None}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


async def ask(
    http: httpx.AsyncClient, server: ServerUnderTest, token: str | None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await http.post(server.graphql_url, json={"query": CUSTOMERS}, headers=headers)


async def test_a_token_signed_with_a_published_key_is_accepted_and_others_are_refused(
    settings: Settings, provider: IdentityProvider
) -> None:
    async with (
        running_server(checked_by(settings, provider.url)) as server,
        httpx.AsyncClient(timeout=30) as http,
    ):
        admin = await ask(http, server, signed(PROVIDER_KEY, "k1"))
        stranger = await ask(http, server, signed(STRANGER_KEY, "k1"))
        unknown_key = await ask(http, server, signed(PROVIDER_KEY, "k2"))
        anonymous = await ask(http, server, None)

    assert admin.status_code == 200
    assert admin.json() == {"data": {"customers": {"totalCount": 0}}}
    assert stranger.status_code == 401
    assert "invalid" in stranger.json()["errors"][0]["message"]
    assert unknown_key.status_code == 401
    assert "signing key" in unknown_key.json()["errors"][0]["message"]
    # Configured credentials mean the service is no longer open.
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_key_the_provider_removes_is_refused_once_its_key_set_expires(
    settings: Settings, provider: IdentityProvider
) -> None:
    async with (
        running_server(checked_by(settings, provider.url)) as server,
        httpx.AsyncClient(timeout=30) as http,
    ):
        before = await ask(http, server, signed(PROVIDER_KEY, "k1"))
        provider.keys = {"k2": NEXT_KEY}  # the provider rotates its key
        await asyncio.sleep(KEY_SET_LIFESPAN_S * 1.5)
        removed = await ask(http, server, signed(PROVIDER_KEY, "k1"))
        rotated = await ask(http, server, signed(NEXT_KEY, "k2"))

    assert before.status_code == 200
    assert removed.status_code == 401
    assert "signing key" in removed.json()["errors"][0]["message"]
    assert rotated.status_code == 200


async def test_a_token_must_name_the_configured_audience_and_issuer(
    settings: Settings, provider: IdentityProvider
) -> None:
    tokens = {
        "no aud": signed(PROVIDER_KEY, "k1", aud=None),
        "another aud": signed(PROVIDER_KEY, "k1", aud="https://other.example.com"),
        "no iss": signed(PROVIDER_KEY, "k1", iss=None),
        "another iss": signed(PROVIDER_KEY, "k1", iss="https://evil.example.com/"),
    }
    async with (
        running_server(checked_by(settings, provider.url)) as server,
        httpx.AsyncClient(timeout=30) as http,
    ):
        answers = {case: await ask(http, server, token) for case, token in tokens.items()}

    assert {case: answer.status_code for case, answer in answers.items()} == dict.fromkeys(
        tokens, 401
    )
    reasons = {case: answer.json()["errors"][0]["message"] for case, answer in answers.items()}
    assert all("invalid" in reason for reason in reasons.values()), reasons


@pytest.mark.parametrize(
    ("published", "reason"),
    [
        (None, "cannot be fetched"),  # nothing listens
        (b"<html>502 Bad Gateway</html>", "cannot be used"),
        (b'{"keys": []}', "cannot be used"),
        (b'{"keys": [{"kty": "XYZ", "kid": "k1"}]}', "cannot be used"),
    ],
    ids=["down", "not JSON", "no keys", "no usable key"],
)
async def test_a_key_set_that_cannot_be_used_answers_401_saying_so(
    settings: Settings, provider: IdentityProvider, published: bytes | None, reason: str
) -> None:
    provider.body = published
    url = provider.url if published else f"https://127.0.0.1:{free_port()}/jwks.json"
    async with (
        running_server(checked_by(settings, url)) as server,
        httpx.AsyncClient(timeout=30) as http,
    ):
        answer = await ask(http, server, signed(PROVIDER_KEY, "k1"))

    assert answer.status_code == 401
    error = answer.json()["errors"][0]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "identity provider" in error["message"]
    assert reason in error["message"]


def test_a_jwks_url_must_be_https() -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(
            jwt_jwks_url="http://id.example.com/jwks.json", jwt_audience=AUDIENCE, jwt_issuer=ISSUER
        )
    assert "SHOP_JWT_JWKS_URL='http://id.example.com/jwks.json'" in str(refused.value)
    assert "https://" in str(refused.value)


def test_a_jwks_url_needs_an_audience_and_an_issuer() -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(jwt_jwks_url="https://id.example.com/jwks.json")
    assert "SHOP_JWT_AUDIENCE" in str(refused.value)
    assert "SHOP_JWT_ISSUER" in str(refused.value)
    with pytest.raises(SettingsError) as refused:
        load_settings(jwt_jwks_url="https://id.example.com/jwks.json", jwt_audience=AUDIENCE)
    assert "SHOP_JWT_AUDIENCE" not in str(refused.value)
    assert "SHOP_JWT_ISSUER" in str(refused.value)
