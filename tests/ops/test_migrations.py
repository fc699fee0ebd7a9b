"""Two migration histories; an external store whose schema is behind is refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text

from app.adapters.migrations import (
    History,
    SchemaBehindError,
    require_current,
    schema_state,
    upgrade,
)
from app.config.settings import Settings
from app.runtime.bootstrap import Stores, open_stores


async def _tables(stores: Stores) -> tuple[set[str], set[str]]:
    query = text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    async with stores.write_engine.connect() as write, stores.read_engine.connect() as read:
        return (
            set((await write.execute(query)).scalars()),
            set((await read.execute(query)).scalars()),
        )


async def test_an_empty_database_is_reported_behind(unmigrated_settings: Settings) -> None:
    async with open_stores(unmigrated_settings) as stores:
        with pytest.raises(SchemaBehindError, match="run `shop migrate`"):
            await require_current(stores.write_engine, History.WRITE)


async def test_upgrade_brings_each_history_to_its_head(unmigrated_settings: Settings) -> None:
    async with open_stores(unmigrated_settings) as stores:
        await upgrade(stores.write_engine, History.WRITE)
        await upgrade(stores.read_engine, History.READ)
        await upgrade(stores.read_engine, History.READ)  # nothing left to do: no error
        write_state = await schema_state(stores.write_engine, History.WRITE)
        read_state = await schema_state(stores.read_engine, History.READ)
        write_tables, read_tables = await _tables(stores)
    assert write_state.up_to_date
    assert read_state.up_to_date
    assert {"outbox", "alembic_version_write"} <= write_tables
    assert "order_view" not in write_tables
    assert {
        "order_view",
        "order_view_applied",
        "dead_letters",
        "alembic_version_read",
    } <= read_tables
    assert "outbox" not in read_tables


def test_serve_refuses_an_external_schema_that_is_behind(
    unmigrated_settings: Settings, shop_bin: Path, tmp_path: Path
) -> None:
    env = {
        "SHOP_DATABASE_URL": str(unmigrated_settings.database_url),
        "SHOP_READ_DATABASE_URL": str(unmigrated_settings.read_database_url),
        "SHOP_REDIS_URL": str(unmigrated_settings.redis_url),
        "SHOP_DATA_DIR": str(tmp_path / "unused"),
        "PATH": str(shop_bin.parent),
    }
    refused = subprocess.run(
        [shop_bin, "serve", "--port", "0"], env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 1
    assert "run `shop migrate`" in refused.stderr
    assert not (tmp_path / "unused").exists()  # nothing embedded was started

    # Two migrators at once take turns on an advisory lock; both succeed.
    migrators = [
        subprocess.Popen([shop_bin, "migrate"], env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for migrator in migrators:
        _, stderr = migrator.communicate(timeout=60)
        assert migrator.returncode == 0, stderr
        assert "latest schema" in stderr
