"""How big a run is: `small` checks the suite works (CI runs it), `full` is what
BENCHMARKS.md reports."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Size:
    name: str
    load_seconds: float  # each load run (wrk, pgbench)
    write_customers: int
    write_products: int
    # Orders already placed when the write and lag runs start, their read models built: a
    # shop's tables are not empty, and a table that grows from empty during a run keeps the
    # plans PostgreSQL cached while it was small (its foreign key checks scan it) until
    # autovacuum analyzes it, a minute or more later.
    write_orders: int
    lag_seconds: float
    backlog_orders: int  # the projector backlog: about 1.6 events per order
    query_orders: tuple[int, ...]  # one data set per entry, queried and rebuilt
    subscribers: int  # held by one API process
    fanout: int  # subscribers of one order, for the fan-out latency
    fanout_rounds: int


SIZES = {
    "small": Size(
        "small", load_seconds=3, write_customers=1000, write_products=300, write_orders=2_000,
        lag_seconds=5,
        backlog_orders=5_000, query_orders=(2_000, 10_000), subscribers=500, fanout=200,
        fanout_rounds=2,
    ),
    "full": Size(
        "full", load_seconds=15, write_customers=10_000, write_products=1000, write_orders=100_000,
        lag_seconds=30,
        backlog_orders=125_000, query_orders=(100_000, 1_000_000), subscribers=10_000,
        fanout=1000, fanout_rounds=5,
    ),
}  # fmt: skip
