"""Tokens checked against an identity provider's keys (SHOP_JWT_JWKS_URL) instead of a secret."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from app.config.settings import Settings
from devtools.servers import running_server

CUSTOMERS = "{ customers(first: 1) { totalCount } }"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


PROVIDER_KEY = rsa_key()
STRANGER_KEY = rsa_key()  # signs with the provider's key id, but is not the provider


@pytest.fixture
def jwks_url() -> Iterator[str]:
    """An identity provider's JWKS endpoint on loopback, publishing PROVIDER_KEY as `k1`."""
    jwk = json.loads(RSAAlgorithm.to_jwk(PROVIDER_KEY.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


def signed(key: rsa.RSAPrivateKey, kid: str, role: str = "admin") -> str:
    claims = {"sub": "ops@example.com", "role": role, "exp": int(time.time()) + 600}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


async def test_a_token_signed_with_a_published_key_is_accepted_and_others_are_refused(
    settings: Settings, jwks_url: str
) -> None:
    provider = settings.model_copy(update={"jwt_jwks_url": jwks_url})
    async with running_server(provider) as server, httpx.AsyncClient(timeout=30) as http:

        async def ask(authorization: str | None) -> httpx.Response:
            headers = {"Authorization": authorization} if authorization else {}
            return await http.post(server.graphql_url, json={"query": CUSTOMERS}, headers=headers)

        admin = await ask(f"Bearer {signed(PROVIDER_KEY, 'k1')}")
        stranger = await ask(f"Bearer {signed(STRANGER_KEY, 'k1')}")
        unknown_key = await ask(f"Bearer {signed(PROVIDER_KEY, 'k2')}")
        anonymous = await ask(None)

    assert admin.status_code == 200
    assert admin.json() == {"data": {"customers": {"totalCount": 0}}}
    assert stranger.status_code == 401
    assert "invalid" in stranger.json()["errors"][0]["message"]
    assert unknown_key.status_code == 401
    assert "signing key" in unknown_key.json()["errors"][0]["message"]
    # Configured credentials mean the service is no longer open.
    assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
