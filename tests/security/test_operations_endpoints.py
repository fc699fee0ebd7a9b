"""/metrics and /readyz on a secured server: metrics for admins, readiness reasons for admins."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from app.config.settings import Settings
from app.security.principal import UserRole
from app.security.tokens import mint_token
from devtools.servers import ServerUnderTest, running_server

SECRET = "test-secret-of-at-least-32-bytes-long"
ADMIN = {"Authorization": f"Bearer {mint_token(SECRET, UserRole.ADMIN, 'ops', 86400)}"}
CUSTOMER = mint_token(SECRET, UserRole.CUSTOMER, "0b6f2a7c-3b7e-4b43-9a57-1d1f0f7d9c11", 86400)
UNREACHABLE_REDIS = "redis://127.0.0.1:9/0"


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[ServerUnderTest]:
    """A secured server whose Redis does not answer: readiness has a reason to give."""
    secured = settings.model_copy(
        update={"jwt_secret": SecretStr(SECRET), "redis_url": UNREACHABLE_REDIS}
    )
    async with running_server(secured) as running:
        yield running


@pytest.mark.parametrize(
    ("authorization", "status"),
    [(None, 401), (f"Bearer {CUSTOMER}", 403), ("Bearer not-a-token", 401), ("Basic eDp5", 401)],
)
async def test_metrics_are_refused_to_anyone_but_an_admin(
    server: ServerUnderTest, authorization: str | None, status: int
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with httpx.AsyncClient(timeout=30) as client:
        refused = await client.get(f"{server.base_url}/metrics", headers=headers)
    assert refused.status_code == status, refused.text
    assert "shop_commands" not in refused.text
    if status == 401:
        assert refused.headers["www-authenticate"].startswith("Bearer")


async def test_an_admin_token_reads_the_metrics(server: ServerUnderTest) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.get(f"{server.base_url}/metrics", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    assert "shop_commands" in answer.text


async def test_readiness_tells_anyone_but_an_admin_only_which_check_fails(
    server: ServerUnderTest,
) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        for headers in ({}, {"Authorization": f"Bearer {CUSTOMER}"}, {"Authorization": "x"}):
            ready = await client.get(f"{server.base_url}/readyz", headers=headers)
            assert ready.status_code == 200
            assert ready.json() == {
                "status": "degraded",
                "role": "all",
                "write_store": "ok",
                "read_store": "ok",
                "redis": "failing",
            }


async def test_readiness_tells_an_admin_why_a_check_fails(server: ServerUnderTest) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        ready = await client.get(f"{server.base_url}/readyz", headers=ADMIN)
    body = ready.json()
    assert body["status"] == "degraded"
    assert body["redis"] not in ("ok", "failing")
    assert "Error" in body["redis"]
