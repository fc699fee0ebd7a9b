"""Write path: placeOrder with three lines through the whole service, beside the same SQL
transaction run by pgbench straight against PostgreSQL (the limit of this machine)."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    BenchError,
    LoadResult,
    cpu_meter,
    log,
    mark_delivered,
    percentile,
    require_tool,
    settle,
    shop_serve,
    write_lua_data,
    wrk,
)
from benchmarks.seed import Dataset, rebuild_all, sample_ids, seed
from benchmarks.sizes import Size
from devtools.stores import StoreServers, StoreUrls, fresh_stores

CONCURRENCY = (1, 16, 64)
CPU_CLIENTS = 16  # where the CPU each process spends per request is reported

# What the service runs for placeOrder (see app/write/repositories.py, unit_of_work.py and
# outbox.py): read the customer, lock the three products in id order, write their stock
# back, insert the order, its lines and the OrderPlaced event, NOTIFY the relay, commit.
_PAYLOAD = json.dumps(
    {
        "order_id": "00000000-0000-0000-0000-000000000000",
        "customer_id": "00000000-0000-0000-0000-000000000000",
        "customer_name": "Customer 1",
        "customer_email": "customer1@example.com",
        "lines": [
            {
                "product_id": "00000000-0000-0000-0000-000000000000",
                "sku": "SKU-000001",
                "product_name": "Product 1",
                "unit_price_cents": 1234,
                "quantity": 2,
            }
        ]
        * 3,
        "item_count": 6,
        "total_cents": 7404,
        "placed_at": "2026-11-22T10:15:00Z",
    }
)
PGBENCH_SCRIPT = f"""
\\set c random(1, :ncust)
\\set third :nprod / 3
\\set p1 random(1, :third)
\\set p2 :p1 + :third
\\set p3 :p2 + :third
\\set q1 random(1, 3)
\\set q2 random(1, 3)
\\set q3 random(1, 3)
BEGIN;
SELECT id, email, name, version, registered_at FROM customers WHERE id = md5('c' || :c)::uuid;
SELECT id, version, sku, name, price_cents, stock FROM products
  WHERE id IN (md5('p' || :p1)::uuid, md5('p' || :p2)::uuid, md5('p' || :p3)::uuid)
  ORDER BY id FOR UPDATE;
UPDATE products SET stock = stock - :q1, version = version WHERE id = md5('p' || :p1)::uuid;
UPDATE products SET stock = stock - :q2, version = version WHERE id = md5('p' || :p2)::uuid;
UPDATE products SET stock = stock - :q3, version = version WHERE id = md5('p' || :p3)::uuid;
SELECT gen_random_uuid() AS oid \\gset
INSERT INTO orders (id, customer_id, status, cancel_reason, version, placed_at)
  VALUES (:oid, md5('c' || :c)::uuid, 'PLACED', NULL, 1, now());
INSERT INTO order_lines (order_id, line_no, product_id, sku, product_name, unit_price_cents,
  quantity) VALUES
  (:oid, 0, md5('p' || :p1)::uuid, 'SKU-1', 'Product 1', 1234, :q1),
  (:oid, 1, md5('p' || :p2)::uuid, 'SKU-2', 'Product 2', 1234, :q2),
  (:oid, 2, md5('p' || :p3)::uuid, 'SKU-3', 'Product 3', 1234, :q3);
INSERT INTO outbox (event_id, aggregate_type, aggregate_id, aggregate_version, event_type,
  schema_version, payload, occurred_at)
  VALUES (gen_random_uuid(), 'Order', :oid, 1, 'OrderPlaced', 1, '{_PAYLOAD}'::jsonb, now());
SELECT pg_notify('shop_outbox', '');
END;
"""


def pgbench(database_url: str, dataset: Dataset, connections: int, seconds: float) -> LoadResult:
    """The same transaction by pgbench (prepared statements), with per-transaction latencies."""
    binary = require_tool("pgbench", "apt-get install postgresql-client")
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "place_order.sql"
        # pgbench wants each SQL command on one line.
        script.write_text(_one_line_per_command(PGBENCH_SCRIPT))
        command = [
            binary, "-n", "-M", "prepared", "-c", str(connections),
            "-j", str(min(connections, 2)), "-T", str(max(1, round(seconds))),
            "-D", f"ncust={dataset.customers}", "-D", f"nprod={dataset.products}",
            "-f", str(script), "--log", f"--log-prefix={folder}/tx", database_url,
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=folder)
        if done.returncode != 0:
            raise BenchError(f"pgbench failed:\n{done.stderr}\n{done.stdout}")
        latencies = [
            int(line.split()[2]) / 1000
            for log_file in Path(folder).glob("tx*")
            for line in log_file.read_text().splitlines()
        ]
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    if tps is None:
        raise BenchError(f"cannot read pgbench's output:\n{done.stdout}")
    return LoadResult(
        float(tps[1]),
        percentile(latencies, 50),
        percentile(latencies, 99),
        len(latencies),
        int(failed[1]) if failed else 0,
    )


def _one_line_per_command(script: str) -> str:
    lines, current = [], ""
    for raw in script.strip().splitlines():
        if raw.startswith("\\"):
            lines.append(raw)
            continue
        current = f"{current} {raw.strip()}".strip()
        if current.endswith(";") or current.endswith("\\gset"):
            lines.append(current)
            current = ""
    return "\n".join(lines) + "\n"


async def run(servers: StoreServers, size: Size) -> dict[str, object]:
    dataset = Dataset(size.write_orders, size.write_customers, size.write_products)
    results: dict[str, object] = {"dataset": dataset}
    async with fresh_stores(servers, "bench_write") as stores:
        await seed(stores.write, dataset)
        await mark_delivered(stores)
        await rebuild_all(stores)  # a shop with orders behind it (see Size.write_orders)
        data = Path(tempfile.gettempdir()) / f"{stores.prefix}.lua"
        ids = sample_ids(dataset)
        write_lua_data(data, customers=ids["customers"], products=ids["products"])
        results["servers"] = {
            name: await _place_orders(stores, data, size, **env)
            for name, env in {**SERVERS, **CEILING}.items()
        }
        baseline: dict[int, LoadResult] = {}
        for connections in CONCURRENCY:
            log(f"write path: pgbench, {connections} clients")
            with cpu_meter() as spent:
                baseline[connections] = pgbench(stores.write, dataset, connections,
                                                size.load_seconds)  # fmt: skip
            if connections == CPU_CLIENTS:
                results["pgbench_cpu_ms"] = _per_request(spent, baseline[connections])
        data.unlink(missing_ok=True)
    results["pgbench"] = baseline
    return results


# The default `shop serve` (the relay and projectors in a child process); the same with
# them on the API's event loop, as before SHOP_PIPELINE_PROCESS; and scaled out on this
# machine: two API processes (uvicorn workers) beside the pipeline's process.
SERVERS: dict[str, dict[str, str]] = {
    "relay and projectors in a child process (default)": {},
    "relay and projectors on the API's event loop": {"SHOP_PIPELINE_PROCESS": "false"},
    "scaled out: two API processes (`SHOP_WORKERS=2`), the pipeline in a third": {
        "SHOP_WORKERS": "2"
    },
}
DEFAULT = next(iter(SERVERS))
# And the command path alone, with no read side to keep: what any relay and projectors could
# at best leave of it (no lag run: nothing is projected).
CEILING: dict[str, dict[str, str]] = {
    "the command path alone (`SHOP_ROLE=command`: no relay, no projectors)": {
        "SHOP_ROLE": "command"
    },
}


async def _place_orders(stores: StoreUrls, data: Path, size: Size, **env: str) -> dict[str, Any]:
    """placeOrder at each concurrency on one `shop serve`, and the API process's memory."""
    loads: dict[int, LoadResult] = {}
    async with shop_serve(stores, **env) as server:
        if env.get("SHOP_ROLE") != "command":  # nothing to settle without projections
            await settle(server, stores)
        wrk(
            server.graphql_url,
            "place_order.lua",
            connections=4,
            seconds=2,
            env={"BENCH_DATA": str(data)},
        )  # fmt: skip  (warm-up)
        cpu: dict[str, float] = {}
        for connections in CONCURRENCY:
            log(f"write path: placeOrder, {connections} clients{' ' + str(env) if env else ''}")
            with cpu_meter(server.popen.pid) as spent:
                loads[connections] = wrk(
                    server.graphql_url, "place_order.lua", connections=connections,
                    seconds=size.load_seconds, env={"BENCH_DATA": str(data)},
                )  # fmt: skip
            if connections == CPU_CLIENTS:
                cpu = _per_request(spent, loads[connections])
        return {"loads": loads, "rss_mib": server.rss_mib(), "cpu_ms": cpu}


def _per_request(spent: dict[str, float], load: LoadResult) -> dict[str, float]:
    """CPU milliseconds per request (or transaction) of each kind of process."""
    return {kind: 1000 * seconds / max(1, load.requests) for kind, seconds in spent.items()}
