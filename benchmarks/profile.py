"""Profile the server under one load with py-spy: `python -m benchmarks.profile TARGET`.

TARGET is `write` (placeOrder, 16 clients) or a query name of benchmarks/queries.py (on
20,000 orders). py-spy samples the `shop serve` process while wrk drives it and prints the
functions with the most samples, inclusive and self; `--raw FILE` keeps the collapsed
stacks (for flamegraph.pl or speedscope); `--pipeline` samples the child process running the
relay and the projectors instead.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import subprocess
import tempfile
from pathlib import Path

import psutil

from benchmarks.harness import (
    mark_delivered,
    open_servers,
    require_tool,
    settle,
    shop_serve,
    write_lua_data,
    wrk,
)
from benchmarks.queries import queries
from benchmarks.seed import Dataset, rebuild_all, sample_ids, seed
from devtools.stores import fresh_stores


def summarize(raw: Path, top: int = 30) -> str:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = [re.sub(r":\d+\)", ")", f) for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    lines = [f"{total} samples", "", "inclusive:"]
    lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    lines += ["", "self:"]
    lines += [f"{100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    return "\n".join(lines)


async def profile(target: str, seconds: float, raw: Path, pipeline: bool = False) -> None:
    py_spy = require_tool("py-spy", "pip install py-spy")
    with open_servers() as servers:
        orders = 0 if target == "write" else 20_000
        dataset = (
            Dataset(orders, customers=1000, products=300)
            if target == "write"
            else (Dataset.for_orders(orders))
        )
        async with fresh_stores(servers, "bench_profile") as stores:
            await seed(stores.write, dataset)
            await mark_delivered(stores)
            if orders:
                await rebuild_all(stores)
            data = Path(tempfile.gettempdir()) / f"{stores.prefix}.lua"
            ids = sample_ids(dataset)
            write_lua_data(data, **ids)
            env = {"BENCH_DATA": str(data)}
            script = "place_order.lua"
            if target != "write":
                document, arg = queries()[target]
                env.update(BENCH_QUERY=document, BENCH_ARG=arg)
                script = "query.lua"
            async with shop_serve(stores) as server:
                await settle(server, stores)
                wrk(server.graphql_url, script, connections=16, seconds=2, env=env)
                pid = server.popen.pid
                if pipeline:  # the child process running the relay and the projectors
                    pid = psutil.Process(pid).children(recursive=True)[0].pid
                spy = subprocess.Popen(  # noqa: ASYNC220 - runs beside wrk
                    [py_spy, "record", "--pid", str(pid), "--format", "raw",
                     "--rate", "200", "--duration", str(round(seconds)), "--output", str(raw),
                     "--nonblocking"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                result = wrk(server.graphql_url, script, connections=16, seconds=seconds, env=env)
                spy.wait()
            data.unlink(missing_ok=True)
    print(f"{target}: {result.requests_per_s:,.0f} req/s, p99 {result.p99_ms:.1f} ms")
    print(summarize(raw))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("target", choices=["write", *queries()])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--raw", type=Path, default=Path(tempfile.gettempdir()) / "shop.prof")
    parser.add_argument(
        "--pipeline", action="store_true", help="sample the relay and projectors' process"
    )
    args = parser.parse_args()
    asyncio.run(profile(args.target, args.seconds, args.raw, args.pipeline))


if __name__ == "__main__":
    main()
