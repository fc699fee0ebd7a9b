"""Subscriptions: how many WebSocket subscribers one API process holds and its memory, and
how long one order update takes to reach each of them and each of 1,000 subscribers of that
order; first with every subscriber running its own subscription (SHOP_SHARED_SUBSCRIPTIONS=
false), then with subscribers alike sharing one (the default)."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import httpx
import psutil

from benchmarks.harness import BenchError, log, mark_delivered, settle, shop_serve
from benchmarks.seed import Dataset, customer_id, product_id, seed
from benchmarks.sizes import Size
from devtools.graphql_client import GraphQLClient
from devtools.servers import ServerProcess
from devtools.stores import StoreServers, fresh_stores

_PLACE = (
    "mutation($input: PlaceOrderInput!) { placeOrder(input: $input) "
    "{ orderId userErrors { code } order { id } } }"
)


async def _new_order(server: ServerProcess) -> str:
    variables = {
        "input": {
            "customerId": str(customer_id(1)),
            "lines": [{"productId": str(product_id(1)), "quantity": 1}],
        }
    }
    async with httpx.AsyncClient(timeout=30) as client:
        body = await GraphQLClient(server.graphql_url, client).execute(_PLACE, variables)
    payload = body["data"]["placeOrder"]
    # `order` is read from the read model, so the order is projected once it is there.
    if payload["userErrors"] or payload["order"] is None:
        raise BenchError(f"placeOrder failed: {body}")
    return str(payload["orderId"])


async def _sockets_released(server: ServerProcess, timeout_s: float = 120) -> None:
    """Wait until the server has closed the last round's sockets, so that a round is not
    timed while the server still closes thousands of them."""
    port = int(server.base_url.rsplit(":", 1)[1])
    process = psutil.Process(server.popen.pid)
    for _ in range(int(timeout_s / 0.2)):
        held = [c for c in process.net_connections("tcp") if c.laddr and c.laddr.port == port]
        if all(c.status == psutil.CONN_LISTEN for c in held):
            return
        await asyncio.sleep(0.2)
    raise BenchError(f"the server still holds sockets {timeout_s:.0f} s after their clients left")


async def _subscribers(server: ServerProcess, order: str, n: int) -> dict[str, Any]:
    """n subscribers to one order: the server's memory while they are held, then one update."""
    before = server.rss_mib()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.loadgen", "subs", "--url", server.graphql_url,
        "--order", order, "--n", str(n),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, limit=2**20,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stdin is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=600)
    if not line.startswith(b"READY"):
        _, err = await process.communicate()
        raise BenchError(f"subscribers did not start: {line!r}\n{err.decode()[-3000:]}")
    await asyncio.sleep(1)
    held = server.rss_mib()
    process.stdin.write(b"GO\n")
    await process.stdin.drain()
    out, err = await process.communicate()
    if process.returncode != 0:
        raise BenchError(f"the subscriber load generator failed:\n{err.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result.update(rss_before_mib=before, rss_held_mib=held)
    await _sockets_released(server)
    return result


# Each subscriber running its own subscription (as before shared results), then the default.
PASSES = {"per subscriber": "false", "shared": "true"}


async def run(servers: StoreServers, size: Size) -> dict[str, Any]:
    passes: dict[str, Any] = {}
    async with fresh_stores(servers, "bench_subs") as stores:
        await seed(stores.write, Dataset(orders=0, customers=100, products=100))
        await mark_delivered(stores)
        for name, shared in PASSES.items():
            async with shop_serve(stores, SHOP_SHARED_SUBSCRIPTIONS=shared) as server:
                await settle(server, stores)
                log(f"subscriptions ({name}): {size.subscribers} subscribers to one order")
                order = await _new_order(server)
                held = await _subscribers(server, order, size.subscribers)
                rounds = []
                for round_ in range(size.fanout_rounds):
                    log(f"subscriptions ({name}): fan-out to {size.fanout}, round {round_ + 1}")
                    order = await _new_order(server)
                    rounds.append(await _subscribers(server, order, size.fanout))
            passes[name] = {"held": held, "fanout": rounds}
    return {"passes": passes}
