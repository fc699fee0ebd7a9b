"""The sales report: every day of a date range from daily_sales, zeros where none was kept."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import Date, RowMapping, Select, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.projections.tables import daily_sales
from app.queries.errors import InvalidArgument

MAX_REPORT_DAYS = 366
_COUNTERS = ("orders_placed", "orders_cancelled", "items_sold", "revenue_cents")


def report_days(start: date, end: date) -> int:
    """How many days [start, end] holds; InvalidArgument for a reversed or too long range."""
    if start > end:
        raise InvalidArgument(f"from ({start}) must not be after to ({end})")
    days = (end - start).days + 1
    if days > MAX_REPORT_DAYS:
        raise InvalidArgument(
            f"a sales report covers at most {MAX_REPORT_DAYS} days; {start}..{end} is {days}"
        )
    return days


def sales_report_query(start: date, end: date) -> Select[Any]:
    """One row per day of [start, end], in date order."""
    # Integer offsets added to a date give dates, whatever the session's time zone.
    offsets = (
        func.generate_series(0, report_days(start, end) - 1)
        .table_valued("offset")
        .render_derived("offsets")
    )
    days = select((cast(literal(start), Date) + offsets.c.offset).label("day")).subquery("days")
    counters = [func.coalesce(daily_sales.c[name], 0).label(name) for name in _COUNTERS]
    return (
        select(days.c.day, *counters)
        .select_from(days.outerjoin(daily_sales, daily_sales.c.day == days.c.day))
        .order_by(days.c.day)
    )


async def read_sales_report(engine: AsyncEngine, start: date, end: date) -> Sequence[RowMapping]:
    """The report's rows; InvalidArgument for a bad range (checked before any query)."""
    query = sales_report_query(start, end)
    async with engine.connect() as connection:
        rows: Sequence[RowMapping] = (await connection.execute(query)).mappings().all()
    return rows
