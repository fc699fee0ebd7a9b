"""A rebuild's tables go live with the planner's statistics and their visibility maps."""

from __future__ import annotations

from sqlalchemy import text

from app.pipeline.rebuild import rebuild
from app.projections.registry import PROJECTIONS
from app.runtime.bootstrap import Stores


async def test_tables_swapped_in_by_a_rebuild_have_planner_statistics(stores: Stores) -> None:
    await rebuild(PROJECTIONS, stores.read_engine, stores.write_engine, lambda *_: None)
    names = [table.name for projection in PROJECTIONS for table in projection.all_tables]
    async with stores.read_engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT relname, reltuples FROM pg_class WHERE relkind = 'r' "
                "AND relnamespace = 'public'::regnamespace AND relname = ANY(:names)"
            ),
            {"names": names},
        )
        never_analyzed = [name for name, tuples in rows if tuples < 0]  # -1: never counted
    assert names
    assert never_analyzed == []
