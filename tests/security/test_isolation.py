"""The query side's database role may read the read tables and nothing more."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from app.adapters.migrations import READER_ROLE, grant_read_access
from app.adapters.postgres import create_engine
from app.config.settings import Settings
from app.pipeline.rebuild import rebuild
from app.projections.registry import PROJECTIONS
from app.runtime.bootstrap import Stores


def reader_url(settings: Settings) -> str:
    assert settings.read_database_url is not None
    return make_url(settings.read_database_url).set(username=READER_ROLE).render_as_string(False)


async def test_the_reader_role_selects_but_cannot_write(settings: Settings, stores: Stores) -> None:
    await grant_read_access(stores.read_engine)
    reader = create_engine(reader_url(settings), pool_size=1, connect_timeout_s=5)
    try:
        async with reader.connect() as connection:
            assert await connection.scalar(text("SELECT count(*) FROM order_view")) == 0
            with pytest.raises(ProgrammingError, match="permission denied"):
                await connection.execute(text("DELETE FROM customer_summary"))
        async with reader.connect() as connection:
            with pytest.raises(ProgrammingError, match="permission denied"):
                await connection.execute(text("CREATE TABLE intruder (x int)"))
    finally:
        await reader.dispose()


async def test_tables_swapped_in_by_a_rebuild_stay_readable(
    settings: Settings, stores: Stores
) -> None:
    await grant_read_access(stores.read_engine)
    order_view = next(p for p in PROJECTIONS if p.name == "order_view")
    await rebuild([order_view], stores.read_engine, stores.write_engine, lambda *_: None)
    reader = create_engine(reader_url(settings), pool_size=1, connect_timeout_s=5)
    try:
        async with reader.connect() as connection:
            assert await connection.scalar(text("SELECT count(*) FROM order_view")) == 0
    finally:
        await reader.dispose()
