"""Projection lag at a steady half of the maximum mutation rate: from a mutation's response
to its row in the read store, and to its event at a WebSocket subscriber."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.harness import BenchError, log, mark_delivered, settle, shop_serve
from benchmarks.seed import Dataset, rebuild_all, sample_ids, seed
from benchmarks.sizes import Size
from devtools.stores import StoreServers, fresh_stores


async def run(servers: StoreServers, size: Size, max_rate: float, **env: str) -> dict[str, Any]:
    dataset = Dataset(size.write_orders, size.write_customers, size.write_products)
    rate = max(1.0, round(max_rate / 2))
    async with fresh_stores(servers, "bench_lag") as stores:
        await seed(stores.write, dataset)
        await mark_delivered(stores)
        await rebuild_all(stores)  # a shop with orders behind it (see Size.write_orders)
        data = Path(tempfile.gettempdir()) / f"{stores.prefix}.json"
        data.write_text(json.dumps(sample_ids(dataset)))
        async with shop_serve(stores, **env) as server:
            await settle(server, stores)
            log(f"projection lag: {rate:.0f} placeOrder/s for {size.lag_seconds:.0f} s")
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.loadgen", "lag", "--url", server.graphql_url,
                "--read-dsn", stores.read, "--data", str(data), "--rate", str(rate),
                "--seconds", str(size.lag_seconds),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await process.communicate()
        data.unlink(missing_ok=True)
    if process.returncode != 0:
        raise BenchError(f"the lag load generator failed:\n{err.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result["rate_max"] = max_rate
    return result
