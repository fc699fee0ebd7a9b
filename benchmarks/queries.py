"""Queries on the read models beside PostGraphile 5 and a CRUD baseline on the write tables,
at each data size; the `{ __typename }` ceiling of the service's stack; and the rebuild of
every read model from the event log that prepares them.

Each request's order or customer id is drawn uniformly from every order or customer of the
data set (benchmarks/lua/query.lua). Before any server is timed, its answers to every query
are compared with the service's, field by field, for the same ids.

`python -m benchmarks.queries ceiling --port N` serves the ceiling: a plain Starlette
endpoint answering `{"data":{"__typename":"Query"}}`, served by uvicorn as `shop serve` serves
the app (same options, one process, uvloop and httptools).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from benchmarks import postgraphile
from benchmarks.harness import (
    BenchError,
    LoadResult,
    ceiling_serve,
    crud_serve,
    log,
    mark_delivered,
    settle,
    shop_serve,
    write_lua_data,
    wrk,
)
from benchmarks.seed import Dataset, all_ids, rebuild_all, sample_ids, seed
from benchmarks.sizes import Size
from devtools.graphql_client import GraphQLClient
from devtools.stores import StoreServers, fresh_stores

CONNECTIONS = 16
CHECKED = 3  # ids for which each server's answers are compared with the service's
TYPENAME = "{ __typename }"


def _window() -> tuple[date, date]:
    today = datetime.now(UTC).date()
    return today - timedelta(days=30), today


def queries() -> dict[str, tuple[str, str]]:
    """name -> (document, the variable filled per request)."""
    start, today = _window()
    order = (
        "id status itemCount totalCents placedAt customer { id name } "
        "lines { sku quantity lineTotalCents }"
    )
    return {
        TYPENAME: (TYPENAME, ""),
        "order(id)": (f"query($id: ID!) {{ order(id: $id) {{ {order} }} }}", "id"),
        "orders(customerId, first: 20)": (
            "query($customerId: ID!) { orders(filter: {customerId: $customerId}, first: 20) "
            "{ totalCount edges { node { id status totalCents placedAt } } } }",
            "customerId",
        ),
        "customers(TOTAL_SPENT_DESC)": (
            "{ customers(orderBy: TOTAL_SPENT_DESC, first: 20) "
            "{ edges { node { id name orderCount totalSpentCents } } } }",
            "",
        ),
        "products(UNITS_SOLD_DESC)": (
            "{ products(orderBy: UNITS_SOLD_DESC, first: 20) "
            "{ edges { node { id name unitsSold revenueCents } } } }",
            "",
        ),
        "salesReport(30 days)": (
            f'{{ salesReport(from: "{start}", to: "{today}") '
            "{ date ordersPlaced itemsSold revenueCents } }",
            "",
        ),
    }


def postgraphile_queries() -> dict[str, tuple[str, str]]:
    """The same queries in PostGraphile's schema, with the same variables."""
    documents = postgraphile.documents(*_window())
    return {name: (documents[name], arg) for name, (_, arg) in queries().items()}


# ---- answers, compared ---------------------------------------------------------------------

# Fields compared as numbers (PostGraphile sends bigint as a string) or as instants (each
# server writes timestamps its own way).
_NUMBERS = {
    "itemCount", "totalCents", "lineTotalCents", "quantity", "totalCount", "orderCount",
    "totalSpentCents", "unitsSold", "revenueCents", "ordersPlaced", "itemsSold",
}  # fmt: skip
_INSTANTS = {"placedAt"}
_RANKED = {
    "customers(TOTAL_SPENT_DESC)": ("customers", "totalSpentCents"),
    "products(UNITS_SOLD_DESC)": ("products", "unitsSold"),
}


def _values(data: Any, key: str = "") -> Any:
    if isinstance(data, dict):
        return {k: _values(v, k) for k, v in data.items()}
    if isinstance(data, list):
        return [_values(v) for v in data]
    if data is not None and key in _NUMBERS:
        return int(data)
    if data is not None and key in _INSTANTS:
        return datetime.fromisoformat(data)
    return data


def _comparable(name: str, data: Any) -> Any:
    """What two servers must agree on: whole answers, or for rankings the ranked values and
    the rows of the ids both ranked (rows tied on the value may come in another order)."""
    data = _values(data)
    if name in _RANKED:
        field, value = _RANKED[name]
        rows = [edge["node"] for edge in data[field]["edges"]]
        return {"ranked": [row[value] for row in rows], "rows": {row["id"]: row for row in rows}}
    return data


def _agree(name: str, expected: Any, got: Any) -> bool:
    if name not in _RANKED:
        return bool(expected == got)
    both = expected["rows"].keys() & got["rows"].keys()
    return bool(
        expected["ranked"] == got["ranked"]
        and all(expected["rows"][key] == got["rows"][key] for key in both)
    )


def _variables(arg: str, ids: dict[str, list[str]]) -> list[dict[str, str]]:
    if arg == "id":
        return [{"id": value} for value in ids["orders"]]
    if arg == "customerId":
        return [{"customerId": value} for value in ids["customers"]]
    return [{}]


async def answers(
    url: str,
    documents: dict[str, tuple[str, str]],
    ids: dict[str, list[str]],
    reshape: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None,
) -> dict[str, list[Any]]:
    """Each query's comparable answers, one per checked id; `reshape` brings another
    schema's answer to the service's shape."""
    async with httpx.AsyncClient(timeout=300) as client:
        result: dict[str, list[Any]] = {}
        for name, (document, arg) in documents.items():
            result[name] = []
            for variables in _variables(arg, ids):
                body = await GraphQLClient(url, client).execute(document, variables)
                if "errors" in body:
                    raise BenchError(f"{name} failed on {url}: {body['errors']}")
                data = reshape(name, body["data"]) if reshape else body["data"]
                result[name].append(_comparable(name, data))
        return result


def _check(server: str, expected: dict[str, list[Any]], got: dict[str, list[Any]]) -> None:
    wrong = [
        name
        for name, answers_ in expected.items()
        if len(answers_) != len(got[name])
        or not all(_agree(name, e, g) for e, g in zip(answers_, got[name], strict=True))
    ]
    if wrong:
        details = "; ".join(f"{name}: {expected[name]} != {got[name]}" for name in wrong)
        raise BenchError(f"{server} answers differently from the service: {details}"[:4000])


# ---- loads ---------------------------------------------------------------------------------


async def _quiesce(database_url: str, grace_s: float = 2.0, limit_s: float = 120.0) -> None:
    """Wait until no statement runs in the database, cancelling those still running after
    `grace_s`: wrk stops waiting when its time is up, but a server's statements for the
    requests it gave up on go on in PostgreSQL and would slow the next load."""
    running = (
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND state = 'active' AND backend_type = 'client backend'"
    )
    connection = await asyncpg.connect(database_url)
    try:
        started = time.monotonic()
        told = False
        while pids := [row["pid"] for row in await connection.fetch(running)]:
            waited = time.monotonic() - started
            if waited > limit_s:
                log(f"queries: {len(pids)} statements still running after {limit_s:.0f} s")
                return
            if waited > grace_s:
                if not told:
                    log(f"queries: cancelling {len(pids)} statements the last load left running")
                    told = True
                cancel = "SELECT pg_cancel_backend(pid) FROM unnest($1::int[]) pid"
                await connection.execute(cancel, pids)
            await asyncio.sleep(0.1)
    finally:
        await connection.close()


async def _load(
    url: str, data: Path, document: str, arg: str, seconds: float, database: str | None
) -> LoadResult:
    env = {"BENCH_DATA": str(data), "BENCH_QUERY": document, "BENCH_ARG": arg}
    wrk(url, "query.lua", connections=CONNECTIONS, seconds=1, env=env)  # warm-up
    if database:
        await _quiesce(database)
    result = wrk(url, "query.lua", connections=CONNECTIONS, seconds=seconds, env=env)
    if database:
        await _quiesce(database)
    return result


async def _measure(
    url: str,
    data: Path,
    documents: dict[str, tuple[str, str]],
    where: str,
    seconds: float,
    database: str | None = None,
) -> dict[str, LoadResult]:
    """Each query under load; with `database`, what a load leaves running there is ended
    before the next one."""
    results = {}
    for name, (document, arg) in documents.items():
        log(f"queries: {name} on {where}")
        results[name] = await _load(url, data, document, arg, seconds, database)
    return results


def _install_postgraphile() -> tuple[Path | None, str | None]:
    """PostGraphile's folder, or why it is skipped."""
    try:
        return postgraphile.install(), None
    except postgraphile.Unavailable as error:
        log(f"queries: PostGraphile skipped: {error}")
        return None, str(error)


async def run(servers: StoreServers, size: Size) -> dict[int, dict[str, Any]]:
    results: dict[int, dict[str, Any]] = {}
    folder, skipped = _install_postgraphile()
    seconds = size.load_seconds
    for orders in size.query_orders:
        dataset = Dataset.for_orders(orders)
        at = f"{orders:,} orders"
        async with fresh_stores(servers, f"bench_q{orders}") as stores:
            log(f"queries: seeding {orders} orders")
            events = await seed(stores.write, dataset)
            await mark_delivered(stores)
            log(f"queries: rebuilding every read model from {events} events")
            rebuild = await rebuild_all(stores)
            data = Path(tempfile.gettempdir()) / f"{stores.prefix}.ids"
            write_lua_data(data, **all_ids(dataset))
            checked = sample_ids(dataset, count=CHECKED)
            async with shop_serve(stores) as server:
                await settle(server, stores)
                expected = await answers(server.graphql_url, queries(), checked)
                where = f"the read models ({at})"
                cqrs = await _measure(server.graphql_url, data, queries(), where, seconds)
            # Before the compiled read path: every query through strawberry (same data).
            async with shop_serve(stores, SHOP_COMPILED_QUERIES="false") as server:
                _check("the reference executor", expected, await answers(
                    server.graphql_url, queries(), checked))  # fmt: skip
                where = f"the read models, reference executor ({at})"
                reference = await _measure(server.graphql_url, data, queries(), where, seconds)
            async with ceiling_serve(stores) as server:
                log(f"queries: {TYPENAME} on plain Starlette ({at})")
                ceiling = await _load(server.graphql_url, data, TYPENAME, "", seconds, None)
            async with crud_serve(stores) as server:
                got = await answers(server.graphql_url, queries(), checked)
                _check("the CRUD baseline", expected, got)
                where = f"the CRUD baseline ({at})"
                crud = await _measure(
                    server.graphql_url, data, queries(), where, seconds, stores.write
                )
            graphile: dict[str, LoadResult] | None = None
            if folder is not None and skipped is None:
                try:
                    async with postgraphile.serve(folder, stores.write) as server:
                        documents = postgraphile_queries()
                        url = server.graphql_url
                        got = await answers(url, documents, checked, postgraphile.reshape)
                        _check("PostGraphile", expected, got)
                        where = f"PostGraphile ({at})"
                        graphile = await _measure(
                            url, data, documents, where, seconds, stores.write
                        )
                except postgraphile.Unavailable as error:
                    skipped = str(error)
                    log(f"queries: PostGraphile skipped: {skipped}")
            data.unlink(missing_ok=True)
        results[orders] = {
            "events": events,
            "customers": dataset.customers,
            "rebuild_s": rebuild,
            "cqrs": cqrs,
            "reference": reference,
            "ceiling": ceiling,
            "crud": crud,
            "postgraphile": graphile,
            "postgraphile_skipped": skipped if graphile is None else None,
            "postgraphile_version": f"PostGraphile {postgraphile.POSTGRAPHILE} on Node "
            f"{postgraphile.NODE}",
        }
    return results


# ---- the ceiling ---------------------------------------------------------------------------


def ceiling_app() -> Starlette:
    """What no GraphQL server on this stack can beat: a POST answered with a constant."""

    async def graphql(request: Request) -> Response:
        await request.body()
        return JSONResponse({"data": {"__typename": "Query"}})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[Route("/graphql", graphql, methods=["POST"]), Route("/healthz", healthz)]
    )


def main() -> None:
    import uvicorn

    from app.config.settings import Settings
    from app.web.asgi import server_options

    parser = argparse.ArgumentParser(prog="python -m benchmarks.queries")
    parser.add_argument("server", choices=["ceiling"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        ceiling_app(),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        log_config=None,
        log_level="warning",
        lifespan="on",
        **server_options(Settings()),
    )


if __name__ == "__main__":
    main()
