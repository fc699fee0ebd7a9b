"""Settings come from SHOP_* variables and a bad value is refused with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config.settings import Role, SettingsError, load_settings


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


def test_every_bad_value_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_PORT", "x")
    monkeypatch.setenv("SHOP_ROLE", "y")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert "SHOP_PORT" in str(raised.value)
    assert "SHOP_ROLE" in str(raised.value)
