"""Waits for projections are bounded: a thousand that never end share one check per
projection and leave the pool and the other queries alone, and waits past the caps per
request (or WebSocket) and per process are refused at once."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.pool import QueuePool

from app.config.settings import Role, Settings
from app.events.consistency_token import AggregateVersion
from app.pipeline.catch_up import CatchUpCheckFailed
from app.projections.registry import PROJECTIONS
from app.runtime.bootstrap import Api
from devtools.graphql_client import GraphQLClient
from devtools.servers import ServerUnderTest, running_server
from devtools.ws_client import TRANSPORT_WS, subscriber

# Heavy load: run one after another with the other load tests (see pyproject addopts).
pytestmark = pytest.mark.xdist_group("load")

WAITS = 1000
PER_SOCKET = 100  # the most subscriptions one WebSocket may hold (the default cap)
CAUGHT_UP = (
    "subscription($t: String!) { projectionsCaughtUp(token: $t, timeoutMs: 60000) { caughtUp } }"
)
PRODUCT = "query($id: ID!) { product(id: $id) { id name } }"


@dataclass(frozen=True)
class Shop:
    """A command-role server and a query-role server, and nothing that projects: the tokens
    the writer hands out name versions the reader's projections never reach."""

    write: GraphQLClient
    read: GraphQLClient
    reader: ServerUnderTest

    @property
    def api(self) -> Api:
        api: Api = self.reader.app.state.api
        return api

    async def token(self) -> str:
        order = await self.write.order(await self.write.customer(), (await self.write.product(), 1))
        return str(order["consistencyToken"])


@asynccontextmanager
async def shop(settings: Settings, **reader_settings: Any) -> AsyncIterator[Shop]:
    reader = settings.model_copy(update={"role": Role.QUERY, **reader_settings})
    async with (
        running_server(settings.model_copy(update={"role": Role.COMMAND})) as writing,
        running_server(reader) as reading,
        httpx.AsyncClient(timeout=30) as http,
    ):
        yield Shop(
            GraphQLClient(writing.graphql_url, http),
            GraphQLClient(reading.graphql_url, http),
            reading,
        )


async def _latencies(shop: Shop, count: int = 60) -> list[float]:
    """Seconds each of `count` product reads takes, one after another; each must succeed."""
    product_id = str(uuid.uuid4())
    took = []
    for _ in range(count):
        started = time.perf_counter()
        assert (await shop.read.data(PRODUCT, {"id": product_id}))["product"] is None
        took.append(time.perf_counter() - started)
    return took


async def _until_waiting(shop: Shop, count: int) -> None:
    """Wait until the reader's process waits on exactly `count` tokens."""
    for _ in range(500):
        if shop.api.services.catch_up.slots.taken == count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{shop.api.services.catch_up.slots.taken} waits, not {count}")


def _codes(messages: list[dict[str, Any]]) -> list[str]:
    """The error codes in WebSocket messages (graphql-transport-ws or graphql-ws)."""
    payloads = [m.get("payload") for m in messages]
    errors = [e for p in payloads if isinstance(p, dict) for e in p.get("errors") or []]
    errors += [e for p in payloads if isinstance(p, list) for e in p]
    return [e.get("extensions", {}).get("code") for e in errors]


async def test_a_thousand_endless_waits_leave_the_pool_and_other_queries_alone(
    settings: Settings,
) -> None:
    async with shop(settings, max_waits_per_request=PER_SOCKET, max_waits_per_process=WAITS) as s:
        token = await s.token()
        before = statistics.median(await _latencies(s))
        async with AsyncExitStack() as sockets:
            for _ in range(WAITS // PER_SOCKET):
                ws = await sockets.enter_async_context(subscriber(s.reader.ws_url, TRANSPORT_WS))
                for _ in range(PER_SOCKET):
                    await ws.subscribe(CAUGHT_UP, {"t": token})
            await _until_waiting(s, WAITS)
            in_use: list[int] = []
            sampling = asyncio.create_task(_connections_in_use(s.api, in_use))
            during = statistics.median(await _latencies(s))
            sampling.cancel()
            # One more wait in this process is refused at once, with a clear error.
            async with subscriber(s.reader.ws_url, TRANSPORT_WS) as extra:
                await extra.subscribe(CAUGHT_UP, {"t": token})
                refused = await extra.until_done(timeout_s=5)
            assert s.api.services.catch_up.slots.taken == WAITS  # none of the thousand ended
        await _until_waiting(s, 0)  # the clients gone, their waits are
    assert during < 3 * before, f"median {during * 1000:.1f} ms, {before * 1000:.1f} ms before"
    # At most one connection per projection's check, and one for the read measured.
    assert max(in_use) <= len(PROJECTIONS) + 1, in_use
    assert _codes(refused) == ["RATE_LIMITED"], refused
    assert f"this server already waits on {WAITS} consistency tokens" in str(refused)


async def _connections_in_use(api: Api, into: list[int]) -> None:
    """Sample the read store's checked-out connections until cancelled."""
    pool = api.stores.read_engine.pool
    assert isinstance(pool, QueuePool)
    while True:
        into.append(pool.checkedout())
        await asyncio.sleep(0.005)


async def test_waits_on_one_projection_share_one_query(process: Api) -> None:
    statements: list[str] = []
    engine = process.stores.read_engine.sync_engine

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        never = [AggregateVersion("Order", uuid.uuid4(), 99, ("OrderPlaced",))]
        order_view = [p for p in PROJECTIONS if p.name == "order_view"]
        waits = [process.services.catch_up.wait(never, order_view, 1.2) for _ in range(500)]
        results = await asyncio.gather(*waits)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert not any(r.caught_up for r in results)
    # A check when the waits arrive, then one every half second: not one per wait.
    assert 1 <= len(statements) <= 5, len(statements)
    assert process.services.catch_up.slots.taken == 0


async def test_a_failed_check_fails_every_wait_it_was_for(process: Api) -> None:
    async with process.stores.read_engine.begin() as connection:
        await connection.exec_driver_sql("ALTER TABLE order_view_applied RENAME TO lost")
    never = [AggregateVersion("Order", uuid.uuid4(), 99, ("OrderPlaced",))]
    order_view = [p for p in PROJECTIONS if p.name == "order_view"]
    waits = [process.services.catch_up.wait(never, order_view, 5) for _ in range(20)]
    results = await asyncio.gather(*waits, return_exceptions=True)
    assert all(isinstance(r, CatchUpCheckFailed) for r in results), results
    assert len({id(r) for r in results}) == 20  # each caller its own error, the cause shared
    assert "order_view_applied" in str(results[0].__cause__)


async def test_waits_past_the_cap_per_request_are_refused(settings: Settings) -> None:
    async with shop(settings, max_waits_per_request=3, consistency_timeout_ms=300) as s:
        token = await s.token()
        fields = " ".join(f"p{n}: product(id: $id, consistentWith: $t) {{ id }}" for n in range(4))
        query = f"query($id: ID!, $t: String) {{ {fields} }}"
        body = await s.read.execute(query, {"id": str(uuid.uuid4()), "t": token})
    [error] = body["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert "this request already waits on 3 consistency tokens" in error["message"]
    assert body["data"] == {"p0": None, "p1": None, "p2": None, "p3": None}


async def test_waits_past_the_cap_per_websocket_are_refused(settings: Settings) -> None:
    async with shop(settings, max_waits_per_request=2) as s:
        token = await s.token()
        async with subscriber(s.reader.ws_url, TRANSPORT_WS) as ws:
            for _ in range(2):
                await ws.subscribe(CAUGHT_UP, {"t": token})
            await _until_waiting(s, 2)
            await ws.subscribe(CAUGHT_UP, {"t": token})
            refused = await ws.until_done(timeout_s=5)
    assert _codes(refused) == ["RATE_LIMITED"], refused
    assert "this connection already waits on 2 consistency tokens" in str(refused)
