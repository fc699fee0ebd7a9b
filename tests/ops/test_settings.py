"""Settings come from SHOP_* variables and a bad value is refused with a clear message."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from app.config.settings import Role, SettingsError, load_settings
from devtools.ports import free_port
from devtools.processes import environment_without_settings


def test_defaults_leave_every_store_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SHOP_DATABASE_URL", "SHOP_READ_DATABASE_URL", "SHOP_REDIS_URL", "SHOP_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.embedded
    assert settings.data_dir == Path(".shop-data")
    assert (settings.host, settings.port, settings.role) == ("127.0.0.1", 8000, Role.ALL)


def test_values_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_DATABASE_URL", "postgresql://u@db/shop")
    monkeypatch.setenv("SHOP_READ_DATABASE_URL", "postgresql://u@db/shop_read")
    monkeypatch.setenv("SHOP_REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("SHOP_ROLE", "query")
    monkeypatch.setenv("SHOP_ALLOWED_ORIGINS", "https://a.example, https://b.example")
    settings = load_settings()
    assert not settings.embedded
    assert settings.role is Role.QUERY
    assert settings.allowed_origins == ("https://a.example", "https://b.example")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SHOP_PORT", "eighty", "SHOP_PORT='eighty'"),
        ("SHOP_PORT", "70000", "less than or equal to 65535"),
        ("SHOP_ROLE", "reader", "SHOP_ROLE='reader'"),
        ("SHOP_DATABASE_URL", "mysql://root@db/shop", "postgresql://"),
        ("SHOP_REDIS_URL", "http://cache", "redis://"),
        ("SHOP_LOG_LEVEL", "loud", "must be one of"),
        ("SHOP_WORKERS", "0", "SHOP_WORKERS='0'"),
    ],
)
def test_a_bad_value_names_the_variable_and_the_problem(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert expected in str(raised.value)
    assert variable in str(raised.value)


@pytest.mark.parametrize(
    ("variable", "value", "shown"),
    [
        ("SHOP_DATABASE_URL", "mysql://shop:pw-0f9e8d@db/shop", "mysql://shop:***@db/shop"),
        ("SHOP_READ_DATABASE_URL", "mysql://shop:p@w-0f9e8d@db/r", "mysql://shop:***@db/r"),
        ("SHOP_REDIS_URL", "http://:pw-0f9e8d@cache:6379/0", "http://:***@cache:6379/0"),
    ],
)
def test_a_bad_url_is_shown_without_its_password(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, shown: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert f"{variable}='{shown}'" in str(raised.value)
    assert "0f9e8d" not in str(raised.value)


def test_serve_refusing_a_url_does_not_print_its_password(shop_bin: Path, tmp_path: Path) -> None:
    env = {**environment_without_settings(), "SHOP_DATA_DIR": str(tmp_path / "data"),
           "SHOP_DATABASE_URL": "mysql://shop:pw-0f9e8d@db/shop"}  # fmt: skip
    result = subprocess.run(
        [shop_bin, "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "SHOP_DATABASE_URL='mysql://shop:***@db/shop'" in result.stderr
    assert "0f9e8d" not in result.stderr


def test_serve_that_cannot_reach_its_stores_does_not_print_their_passwords(
    shop_bin: Path, tmp_path: Path
) -> None:
    closed = free_port()
    env = {**environment_without_settings(), "SHOP_DATA_DIR": str(tmp_path / "data"),
           "SHOP_DATABASE_URL": f"postgresql://shop:pw-0f9e8d@127.0.0.1:{closed}/shop",
           "SHOP_READ_DATABASE_URL": f"postgresql://shop:pw-0f9e8d@127.0.0.1:{closed}/read",
           "SHOP_REDIS_URL": f"redis://:pw-0f9e8d@127.0.0.1:{closed}/0"}  # fmt: skip
    result = subprocess.run(
        [shop_bin, "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "cannot reach the database" in result.stderr
    assert "0f9e8d" not in result.stderr


def test_every_bad_value_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_PORT", "x")
    monkeypatch.setenv("SHOP_ROLE", "y")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert "SHOP_PORT" in str(raised.value)
    assert "SHOP_ROLE" in str(raised.value)
