"""Rebuild A/B: `python -m benchmarks.rebuild_ab --against OTHER/.venv/bin/shop [--orders N]`.

Seeds one data set, then runs `shop projections rebuild --all` of another checkout (the
"before": a worktree at an earlier commit, with its own virtualenv) and of this one, in turns,
on the same stores; times each (the whole command, process start included) and checks that
both leave the same read models (a checksum of every read table and guard).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import time
from pathlib import Path

import asyncpg

from benchmarks.harness import log, mark_delivered, open_servers
from benchmarks.seed import Dataset, seed
from devtools.stores import StoreUrls, fresh_stores


async def checksums(stores: StoreUrls) -> dict[str, str]:
    """One md5 per read table and guard, over its rows in key order."""
    from app.adapters.postgres import libpq_url
    from app.projections.registry import PROJECTIONS

    connection = await asyncpg.connect(libpq_url(stores.read))
    try:
        sums = {}
        for projection in PROJECTIONS:
            for table in projection.all_tables:
                key = ", ".join(column.name for column in table.primary_key.columns)
                sums[table.name] = await connection.fetchval(
                    f"SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY {key}), '')) "
                    f'FROM "{table.name}" t'
                )
        return sums
    finally:
        await connection.close()


async def run(against: Path, orders: int, rounds: int) -> None:
    this = shutil.which("shop", path=str(Path(sys.executable).parent))
    assert this is not None, "no `shop` beside this Python"
    with open_servers() as servers:
        async with fresh_stores(servers, "bench_rebuild_ab") as stores:
            events = await seed(stores.write, Dataset.for_orders(orders))
            await mark_delivered(stores)
            # Each `shop` imports its own checkout: no PYTHONPATH may point both at one.
            env = {k: v for k, v in stores.env().items() if k != "PYTHONPATH"}
            log(f"rebuild A/B: {orders:,} orders, {events:,} events")
            for round_ in range(1, rounds + 1):
                sums = {}
                for name, shop in (("before", str(against)), ("after", this)):
                    started = time.perf_counter()
                    process = await asyncio.create_subprocess_exec(
                        shop, "projections", "rebuild", "--all", env=env,
                        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                    )  # fmt: skip
                    _, stderr = await process.communicate()
                    seconds = time.perf_counter() - started
                    if process.returncode != 0:
                        raise SystemExit(f"{name} ({shop}) failed:\n{stderr.decode()[-2000:]}")
                    sums[name] = await checksums(stores)
                    log(f"round {round_} {name}: {seconds:.1f} s, {events / seconds:,.0f} events/s"
                        f", {seconds * 1_000_000 / events:.0f} s per 1M events")  # fmt: skip
                differ = [t for t in sums["before"] if sums["before"][t] != sums["after"][t]]
                if differ:
                    raise SystemExit(f"the read models differ: {', '.join(differ)}")
                log("the read models of both are the same")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rebuild_ab", description=__doc__)
    parser.add_argument("--against", type=Path, required=True, help="the other checkout's shop")
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not os.access(args.against, os.X_OK):
        parser.error(f"{args.against} is not an executable `shop`")
    asyncio.run(run(args.against, args.orders, args.rounds))


if __name__ == "__main__":
    main()
