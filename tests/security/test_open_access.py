"""Open access (no secret, no JWKS URL: everyone is an admin) only on a loopback address,
or when asked for by name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from starlette.types import Message

from app.config.settings import Settings, SettingsError, load_settings
from app.web.asgi import create_app
from devtools.ports import free_port
from devtools.processes import environment_without_settings
from devtools.servers import serving
from devtools.stores import StoreUrls

REFUSAL_NAMES = ("SHOP_JWT_SECRET", "SHOP_JWT_JWKS_URL", "SHOP_ALLOW_OPEN_ACCESS")


@pytest.fixture
def clean_env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    """A `shop` process's environment on the test's stores, with none of the user's settings."""
    base = environment_without_settings()
    return StoreUrls.of(settings).env(base, SHOP_DATA_DIR=str(tmp_path / "data"))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost", "LocalHost"])
def test_open_access_is_allowed_on_a_loopback_address(host: str) -> None:
    assert load_settings(host=host, jwt_secret=None, jwt_jwks_url=None).open_access


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "shop.example.com", ""])
def test_open_access_elsewhere_is_a_configuration_error(host: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(host=host, jwt_secret=None, jwt_jwks_url=None)
    assert f"SHOP_HOST={host!r}" in str(refused.value)
    assert all(name in str(refused.value) for name in REFUSAL_NAMES)
    assert load_settings(host=host, jwt_secret=None, allow_open_access=True).open_access


@pytest.mark.parametrize("variable", ["jwt_secret", "jwt_jwks_url"])
def test_an_empty_credentials_setting_is_a_configuration_error(variable: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(**{variable: "", "host": "127.0.0.1"})
    assert f"SHOP_{variable.upper()} is set but empty" in str(refused.value)
    assert all(name in str(refused.value) for name in REFUSAL_NAMES)
    assert load_settings(**{variable: ""}, allow_open_access=True).open_access


def test_serve_on_a_public_address_without_credentials_refuses_to_start(
    shop_bin: Path, clean_env: dict[str, str], tmp_path: Path
) -> None:
    refused = subprocess.run(
        [shop_bin, "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        env=clean_env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert "SHOP_HOST='0.0.0.0'" in refused.stderr
    assert all(name in refused.stderr for name in REFUSAL_NAMES)
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "data").exists()


def test_serve_with_an_empty_secret_refuses_to_start(
    shop_bin: Path, clean_env: dict[str, str], tmp_path: Path
) -> None:
    refused = subprocess.run(
        [shop_bin, "serve", "--port", str(free_port())],
        env={**clean_env, "SHOP_JWT_SECRET": ""}, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert "SHOP_JWT_SECRET is set but empty" in refused.stderr
    assert not (tmp_path / "data").exists()


async def test_open_access_asked_for_by_name_serves_and_logs_an_error_at_start(
    shop_bin: Path, clean_env: dict[str, str]
) -> None:
    env = {**clean_env, "SHOP_ALLOW_OPEN_ACCESS": "true"}
    command = [str(shop_bin), "serve", "--host", "0.0.0.0"]
    async with serving(command, env, "open-on-purpose", "/readyz") as server:
        async with httpx.AsyncClient(timeout=30) as http:
            answer = await http.post(server.graphql_url, json={"query": "{ __typename }"})
        log = server.log_path.read_text(errors="replace")
    assert answer.json() == {"data": {"__typename": "Query"}}
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert any("SHOP_ALLOW_OPEN_ACCESS" in line and "OPEN" in line for line in errors), log


def test_an_app_loaded_by_uvicorn_from_the_environment_applies_the_same_rule(
    clean_env: dict[str, str],
) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "uvicorn", "app.web.asgi:create_app", "--factory",
         "--port", str(free_port())],
        env={**clean_env, "SHOP_HOST": "0.0.0.0"}, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "SHOP_HOST='0.0.0.0'" in refused.stderr
    assert all(name in refused.stderr for name in REFUSAL_NAMES)


async def test_open_access_by_default_answers_only_connections_to_a_loopback_address(
    settings: Settings,
) -> None:
    # `uvicorn --host 0.0.0.0` binds an address the app cannot see at start: the requests that
    # arrive on another address than loopback are refused instead.
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    query = {"query": "{ __typename }"}
    async with httpx.AsyncClient(transport=transport, base_url="http://192.0.2.7") as remote:
        refused = await remote.post("/graphql", json=query)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as local:
        served = await local.get("/healthz")
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    socket = {"type": "websocket", "path": "/graphql", "headers": [], "server": ("192.0.2.7", 80)}
    await app(socket, receive_nothing, send)

    assert refused.status_code == 403
    assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "loopback" in refused.json()["errors"][0]["message"]
    assert served.status_code == 200
    assert [message["type"] for message in sent] == ["websocket.close"]


async def receive_nothing() -> Message:
    raise AssertionError("a refused connection is not read")
