"""Queries on the read models beside a CRUD baseline on the write tables, at each data size;
and the rebuild of every read model from the event log that prepares them."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from benchmarks.harness import (
    BenchError,
    LoadResult,
    crud_serve,
    log,
    mark_delivered,
    settle,
    shop_serve,
    write_lua_data,
    wrk,
)
from benchmarks.seed import Dataset, rebuild_all, sample_ids, seed
from benchmarks.sizes import Size
from devtools.graphql_client import GraphQLClient
from devtools.stores import StoreServers, fresh_stores

CONNECTIONS = 16


def queries() -> dict[str, tuple[str, str]]:
    """name -> (document, the variable filled per request)."""
    today = datetime.now(UTC).date()
    start = today - timedelta(days=30)
    order = (
        "id status itemCount totalCents placedAt customer { id name } "
        "lines { sku quantity lineTotalCents }"
    )
    return {
        "{ __typename }": ("{ __typename }", ""),
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


def _sample(name: str, ids: dict[str, list[str]]) -> dict[str, str]:
    arg = queries()[name][1]
    return (
        {"id": ids["orders"][0]}
        if arg == "id"
        else ({"customerId": ids["customers"][0]} if arg == "customerId" else {})
    )


def _comparable(name: str, data: Any) -> Any:
    """What both servers must agree on: whole answers, or for rankings the ranked values
    (rows tied on the value may come in another order)."""
    if name == "customers(TOTAL_SPENT_DESC)":
        return [e["node"]["totalSpentCents"] for e in data["customers"]["edges"]]
    if name == "products(UNITS_SOLD_DESC)":
        return [e["node"]["unitsSold"] for e in data["products"]["edges"]]
    return data


async def answers(url: str, ids: dict[str, list[str]]) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=120) as client:
        result = {}
        for name, (document, _) in queries().items():
            body = await GraphQLClient(url, client).execute(document, _sample(name, ids))
            if "errors" in body:
                raise BenchError(f"{name} failed on {url}: {body['errors']}")
            result[name] = _comparable(name, body["data"])
        return result


def _load(url: str, data: Path, document: str, arg: str, seconds: float) -> LoadResult:
    env = {"BENCH_DATA": str(data), "BENCH_QUERY": document, "BENCH_ARG": arg}
    wrk(url, "query.lua", connections=CONNECTIONS, seconds=1, env=env)  # warm-up
    return wrk(url, "query.lua", connections=CONNECTIONS, seconds=seconds, env=env)


async def run(servers: StoreServers, size: Size) -> dict[int, dict[str, Any]]:
    results: dict[int, dict[str, Any]] = {}
    for orders in size.query_orders:
        dataset = Dataset.for_orders(orders)
        async with fresh_stores(servers, f"bench_q{orders}") as stores:
            log(f"queries: seeding {orders} orders")
            events = await seed(stores.write, dataset)
            await mark_delivered(stores)
            log(f"queries: rebuilding every read model from {events} events")
            rebuild = await rebuild_all(stores)
            data = Path(tempfile.gettempdir()) / f"{stores.prefix}.lua"
            ids = sample_ids(dataset)
            write_lua_data(data, orders=ids["orders"], customers=ids["customers"])
            cqrs: dict[str, LoadResult] = {}
            crud: dict[str, LoadResult] = {}
            async with shop_serve(stores) as server:
                await settle(server, stores)
                expected = await answers(server.graphql_url, ids)
                for name, (document, arg) in queries().items():
                    log(f"queries ({orders} orders): {name} on the read models")
                    cqrs[name] = _load(server.graphql_url, data, document, arg,
                                       size.load_seconds)  # fmt: skip
            async with crud_serve(stores) as server:
                if (got := await answers(server.graphql_url, ids)) != expected:
                    wrong = [name for name in expected if expected[name] != got[name]]
                    raise BenchError(f"the CRUD baseline answers differently: {wrong}")
                for name, (document, arg) in queries().items():
                    log(f"queries ({orders} orders): {name} on the CRUD baseline")
                    crud[name] = _load(server.graphql_url, data, document, arg,
                                       size.load_seconds)  # fmt: skip
            data.unlink(missing_ok=True)
        results[orders] = {"events": events, "rebuild_s": rebuild, "cqrs": cqrs, "crud": crud}
    return results
