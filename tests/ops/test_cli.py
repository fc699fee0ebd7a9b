"""The `shop` command line: schema export and clear refusals of bad configuration."""

from __future__ import annotations

import subprocess
from pathlib import Path

from graphql import build_schema


def test_export_schema_prints_valid_sdl(shop_bin: Path) -> None:
    result = subprocess.run([shop_bin, "export-schema"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    schema = build_schema(result.stdout)
    assert schema.query_type is not None
    assert "service" in schema.query_type.fields


def test_a_bad_setting_stops_serve_with_a_clear_message(shop_bin: Path, tmp_path: Path) -> None:
    env = {"SHOP_PORT": "eighty", "SHOP_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run(
        [shop_bin, "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "SHOP_PORT='eighty'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_commands_that_use_no_redis_start_none(
    shop_bin: Path, shop_env: dict[str, str], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    env = {key: value for key, value in shop_env.items() if key != "SHOP_REDIS_URL"}
    env["SHOP_DATA_DIR"] = str(data)
    for command in (["migrate"], ["dlq", "list"], ["projections", "rebuild", "--all"]):
        result = subprocess.run(
            [shop_bin, *command], env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, (command, result.stderr)
        assert not data.exists(), f"`shop {' '.join(command)}` started an embedded server"
