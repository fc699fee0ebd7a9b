"""Load generators that run in their own process (`python -m benchmarks.loadgen MODE ...`),
so the server under test does not share an event loop with its clients. Each prints one
JSON object on its last line.

lag   placeOrder at a fixed rate (open loop); for each order, the time from the mutation's
      response to (a) its row being visible in the read store (polled every 2 ms) and (b)
      its event arriving on an `ordersChanged` subscription.
subs  N WebSocket clients subscribe to `orderUpdated` of one order; prints READY and waits
      for a line on stdin (the harness measures the server meanwhile), then pays the order
      and measures when the update reaches each subscriber's socket (HeldConnection), then
      checks that each got the paid order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import asyncpg
import httpx
from websockets.asyncio.client import ClientConnection

from benchmarks.harness import percentile  # importing it raises the open-files limit
from devtools.graphql_client import PAY_ORDER, PLACE_ORDER
from devtools.ws_client import Subscriber

# Thousands of connections from one process: large frames, a minute to open, and no pings
# of the client's own (the server's are answered).
CONNECT_OPTIONS: dict[str, Any] = {
    "max_size": 2**22,
    "open_timeout": 60,
    "ping_interval": None,
    "ack_timeout_s": 60,
}
ORDERS_CHANGED = "subscription { ordersChanged { id version } }"
ORDER_UPDATED = "subscription($id: ID!) { orderUpdated(id: $id) { id status version } }"


class _Http:
    """A minimal HTTP/1.1 client for POSTing JSON on keep-alive connections. With httpx the
    load generator, not the service, was the bottleneck at the lag test's rates: it sent 102
    of the 191 mutations a second it was asked for, at 80% of a core, while the API process
    used 29%."""

    def __init__(self, url: str, connections: int) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.head = (
            f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.slots = asyncio.Semaphore(connections)

    async def post(self, body: bytes) -> tuple[int, bytes]:
        async with self.slots:
            reader, writer = (
                self.idle.pop()
                if self.idle
                else await asyncio.open_connection(self.host, self.port)
            )
            writer.write(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            payload = await reader.readexactly(length)
            self.idle.append((reader, writer))
            return int(status_line.split()[1]), payload

    async def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    ms = [1000 * value for value in values]
    return {"p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99), "max_ms": max(ms)}


async def lag(args: argparse.Namespace) -> dict[str, Any]:
    data = json.loads(Path(args.data).read_text())  # noqa: ASYNC240 - before any load
    ws_url = args.url.replace("http", "ws", 1)
    responded: dict[str, float] = {}
    visible: dict[str, float] = {}
    # Answered and not seen in the read store yet: the poll looks for these only (scanning
    # every answered order each 2 ms made this process, not the service, the bottleneck).
    waiting: set[str] = set()
    notified: dict[str, float] = {}
    failures = 0

    subscription = await Subscriber.connect(ws_url, **CONNECT_OPTIONS)
    await subscription.subscribe(ORDERS_CHANGED)

    async def listen() -> None:
        while True:
            order = (await subscription.data(timeout_s=None))["ordersChanged"]
            notified.setdefault(order["id"], time.perf_counter())

    reader = await asyncpg.connect(args.read_dsn)

    async def poll() -> None:
        while True:
            if waiting:
                rows = await reader.fetch(
                    "SELECT id::text FROM order_view WHERE id = ANY($1::uuid[])", list(waiting)
                )
                now = time.perf_counter()
                for row in rows:
                    visible[row[0]] = now
                    waiting.discard(row[0])
            await asyncio.sleep(0.002)

    rng = random.Random(5)
    client = _Http(args.url, connections=64)
    try:

        async def place() -> None:
            nonlocal failures
            lines = [
                {"productId": p, "quantity": rng.randint(1, 3)}
                for p in rng.sample(data["products"], 3)
            ]
            variables = {"input": {"customerId": rng.choice(data["customers"]), "lines": lines}}
            body = json.dumps({"query": PLACE_ORDER, "variables": variables}).encode()
            status, answer = await client.post(body)
            payload = json.loads(answer).get("data", {}).get("placeOrder") or {}
            if status != 200 or payload.get("userErrors") != []:
                failures += 1
                return
            responded[payload["orderId"]] = time.perf_counter()
            waiting.add(payload["orderId"])

        tasks = [asyncio.create_task(listen()), asyncio.create_task(poll())]
        sent: list[asyncio.Task[None]] = []
        started = time.perf_counter()
        total = int(args.rate * args.seconds)
        for i in range(total):
            delay = started + i / args.rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent.append(asyncio.create_task(place()))
        await asyncio.gather(*sent)
        elapsed = time.perf_counter() - started
        deadline = time.perf_counter() + 15
        while time.perf_counter() < deadline and (  # noqa: ASYNC110 - polls two dicts
            len(visible) < len(responded)
            or len(notified.keys() & responded.keys()) < len(responded)
        ):
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
    finally:
        await client.close()
    await reader.close()
    await subscription.close()
    to_visible = [visible[o] - responded[o] for o in responded if o in visible]
    to_event = [notified[o] - responded[o] for o in responded if o in notified]
    return {
        "rate_asked": args.rate,
        "rate_done": len(responded) / elapsed,
        "orders": len(responded),
        "failures": failures,
        "never_visible": len(responded) - len(to_visible),
        "never_notified": len(responded) - len(to_event),
        "visible": _percentiles(to_visible),
        "event": _percentiles(to_event),
    }


class HeldConnection(ClientConnection):
    """A subscriber's connection that, once held, keeps what arrives unparsed and notes when
    the update arrived. Parsing ten thousand messages as they come costs this one process
    hundreds of milliseconds of the CPU it shares with the server: the later ones would be
    timed by when this process got to them, not by when they reached it."""

    held: list[bytes] | None = None
    arrived_at: float | None = None

    def hold(self) -> None:
        self.held = []

    def data_received(self, data: bytes) -> None:
        if self.held is None:
            super().data_received(data)
            return
        self.held.append(data)
        if self.arrived_at is None and b"PAID" in b"".join(self.held):
            self.arrived_at = time.perf_counter()

    def release(self) -> None:
        held, self.held = self.held or [], None
        for data in held:
            super().data_received(data)


async def _arrivals(clients: list[Subscriber], timeout_s: float) -> None:
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline and any(  # noqa: ASYNC110 - polls many sockets
        _held(c).arrived_at is None for c in clients
    ):
        await asyncio.sleep(0.01)


def _held(client: Subscriber) -> HeldConnection:
    return cast(HeldConnection, client.socket)


async def subs(args: argparse.Namespace) -> dict[str, Any]:
    ws_url = args.url.replace("http", "ws", 1)
    clients: list[Subscriber] = []
    gate = asyncio.Semaphore(100)
    opened = time.perf_counter()

    async def start() -> None:
        async with gate:
            client = await Subscriber.connect(
                ws_url, **CONNECT_OPTIONS, create_connection=HeldConnection
            )
            clients.append(client)
            await client.subscribe(ORDER_UPDATED, {"id": args.order})
            first = await client.data(timeout_s=None)
            assert first["orderUpdated"]["status"] == "PLACED", first

    await asyncio.gather(*(start() for _ in range(args.n)))
    connect_s = time.perf_counter() - opened
    print(f"READY {len(clients)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    for client in clients:
        _held(client).hold()
    async with httpx.AsyncClient(timeout=30) as http:
        sent = time.perf_counter()
        response = await http.post(
            args.url, json={"query": PAY_ORDER, "variables": {"input": {"orderId": args.order}}}
        )
        answered = time.perf_counter()
    assert response.json()["data"]["payOrder"]["userErrors"] == [], response.text
    await _arrivals(clients, timeout_s=60)
    arrived = []
    for client in clients:  # what arrived is read now: each must be the paid order
        connection = _held(client)
        connection.release()
        if connection.arrived_at is not None:
            update = await client.data(timeout_s=5)
            assert update["orderUpdated"]["status"] == "PAID", update
            arrived.append(connection.arrived_at)
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    return {
        "subscribers": len(clients),
        "connect_s": connect_s,
        "received": len(arrived),
        "mutation_ms": (answered - sent) * 1000,
        "from_response": _percentiles([t - answered for t in arrived]),
        "from_request": _percentiles([t - sent for t in arrived]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen")
    modes = parser.add_subparsers(dest="mode", required=True)
    one = modes.add_parser("lag")
    one.add_argument("--url", required=True)
    one.add_argument("--read-dsn", required=True)
    one.add_argument("--data", required=True, help="JSON file with customers and products")
    one.add_argument("--rate", type=float, required=True)
    one.add_argument("--seconds", type=float, required=True)
    two = modes.add_parser("subs")
    two.add_argument("--url", required=True)
    two.add_argument("--order", required=True)
    two.add_argument("--n", type=int, required=True)
    args = parser.parse_args()
    result = asyncio.run(lag(args) if args.mode == "lag" else subs(args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
