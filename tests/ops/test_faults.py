"""Outages and crashes as a client sees them: Redis down, PostgreSQL down (refusing or
black-holing connections), and the API killed with mutations in flight."""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config.settings import Settings
from app.events.consistency_token import load_versions
from app.events.serialization import EventRecord
from app.pipeline import event_log
from app.projections.registry import PROJECTIONS
from app.runtime.bootstrap import Api, Stores
from devtools import store_snapshot
from devtools.graphql_client import (
    CANCEL_ORDER,
    CREATE_PRODUCT,
    PAY_ORDER,
    PLACE_ORDER,
    RESTOCK_PRODUCT,
    GraphQLClient,
)
from devtools.ports import free_port
from devtools.processes import ShopProcesses
from devtools.read_model_check import read_models, replay_log, stock_changes, whole_log
from devtools.servers import Address, ServerUnderTest, running_server, until_answering
from devtools.tcp_proxy import Outage, postgres_behind_proxy, redis_behind_proxy
from tests.support.client_errors import sound
from tests.support.consistency_tokens import versions_of
from tests.support.pipeline_waits import caught_up, settled_statuses, until_projected
from tests.support.shop_traffic import Traffic

ORDER = "query($id: ID!) { order(id: $id) { id status } }"
PRODUCT = "query($id: ID!) { product(id: $id) { id stock } }"
# Generous: a request waits at most SHOP_DB_CONNECT_TIMEOUT_S (5 s) for a connection.
FAIL_FAST_S = 10


async def readiness(client: httpx.AsyncClient, server: ServerUnderTest) -> tuple[int, Any]:
    response = await client.get(f"{server.base_url}/readyz")
    return response.status_code, response.json()


async def outbox_backlog_metric(client: httpx.AsyncClient, server: ServerUnderTest) -> float:
    metrics = (await client.get(f"{server.base_url}/metrics")).text
    found = re.search(r"^shop_outbox_backlog (\S+)$", metrics, re.MULTILINE)
    assert found, metrics
    return float(found.group(1))


async def unpublished(write: AsyncEngine) -> int:
    async with write.connect() as connection:
        return await event_log.unpublished(connection)


# ---------------------------------------------------------------- Redis down


async def test_with_redis_down_commands_commit_readyz_says_degraded_and_nothing_is_lost(
    settings: Settings, stores: Stores, spare_read_engine: AsyncEngine
) -> None:
    # Redis stays up behind a proxy that cuts it off: an outage after which Redis comes back
    # with its data (test_pipeline_faults covers a Redis that comes back empty).
    assert settings.redis_url
    async with (
        redis_behind_proxy(settings.redis_url) as (proxy, redis_url),
        running_server(settings.model_copy(update={"redis_url": redis_url})) as server,
        httpx.AsyncClient(timeout=60) as client,
    ):
        traffic = Traffic(GraphQLClient(server.graphql_url, client), seed=8)
        await traffic.set_up(customers=3, products=3)
        await traffic.run(16)
        await until_projected(stores)
        assert (await readiness(client, server))[1]["status"] == "ready"

        await proxy.go_down(Outage.REFUSE)
        await traffic.run(16)  # every mutation is answered, with no GraphQL error
        placed = await traffic.gql.order(traffic.customers[0], (traffic.products[0], 1))
        status, ready = await readiness(client, server)
        backlog = await outbox_backlog_metric(client, server)
        assert backlog == await unpublished(stores.write_engine) > 0
        await traffic.run(16)
        grown = await outbox_backlog_metric(client, server)
        not_yet = await traffic.gql.data(ORDER, {"id": placed["orderId"]})

        await proxy.come_up()
        await until_projected(stores, timeout_s=60)
        status_after, ready_after = await readiness(client, server)
        backlog_after = await outbox_backlog_metric(client, server)
        statuses = await settled_statuses(stores)

    assert (status, ready["status"]) == (200, "degraded")
    assert ready["redis"] != "ok"
    assert (ready["write_store"], ready["read_store"]) == ("ok", "ok")
    assert grown > backlog  # lag grows while Redis is away
    assert not_yet == {"order": None}  # committed, not projected yet
    assert (status_after, ready_after["status"], backlog_after) == (200, "ready", 0)
    assert [s.lag_events for s in statuses] == [0] * len(PROJECTIONS)
    await replay_log(stores.write_engine, spare_read_engine)
    assert await read_models(stores.read_engine) == await read_models(spare_read_engine)


# ---------------------------------------------------------------- PostgreSQL down


async def timed(request: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await request
    return response, time.monotonic() - started


def assert_store_unavailable(response: httpx.Response, data: object) -> None:
    """A GraphQL error saying the store is unavailable, and not a word of why."""
    body = sound(response)  # no 5xx, JSON, no stack trace, SQL or driver text
    assert body["data"] == data
    [error] = body["errors"]
    request_id = response.headers["x-request-id"]
    assert set(error) == {"message", "locations", "path", "extensions"}
    assert error["message"] == (
        f"The store is unavailable; try again shortly (request id {request_id})."
    )
    assert error["extensions"] == {"code": "UNAVAILABLE", "requestId": request_id}


@pytest.mark.parametrize("outage", list(Outage), ids=lambda outage: outage.name.lower())
async def test_with_postgresql_down_requests_fail_fast_and_clearly_then_recover(
    outage: Outage, settings: Settings, process: Api
) -> None:
    assert settings.database_url
    assert settings.read_database_url
    async with (
        postgres_behind_proxy(settings.database_url, settings.read_database_url) as (
            proxy,
            (write_url, read_url),
        ),
        running_server(
            settings.model_copy(update={"database_url": write_url, "read_database_url": read_url})
        ) as server,
        httpx.AsyncClient(timeout=60) as client,
    ):
        gql = GraphQLClient(server.graphql_url, client)
        customer = await gql.customer()
        created = await gql.ok(CREATE_PRODUCT, sku="P-1", name="Pump", priceCents=900, stock=10)
        product = created["productId"]
        await caught_up(process, created["consistencyToken"])
        place = {"commandId": "during-the-outage", "customerId": customer,
                 "lines": [{"productId": product, "quantity": 2}]}  # fmt: skip
        before = await store_snapshot.write_store(process.stores.write_engine)

        await proxy.go_down(outage)
        (mutation, mutation_s), (query, query_s), (ready, _) = await asyncio.gather(
            timed(client.post(gql.url, json={"query": PLACE_ORDER, "variables": {"input": place}})),
            timed(client.post(gql.url, json={"query": PRODUCT, "variables": {"id": product}})),
            timed(client.get(f"{server.base_url}/readyz")),
        )
        written_meanwhile = await store_snapshot.write_store(process.stores.write_engine)

        await proxy.come_up()  # the next requests succeed, with no restart
        placed = await gql.ok(PLACE_ORDER, **place)
        read = await gql.data(PRODUCT, {"id": product})
        ready_again = await readiness(client, server)
        await caught_up(process, placed["consistencyToken"], timeout_s=60)  # the pipeline too

    assert mutation_s < FAIL_FAST_S
    assert query_s < FAIL_FAST_S
    assert_store_unavailable(mutation, None)
    assert_store_unavailable(query, {"product": None})
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"
    assert written_meanwhile == before
    assert placed["version"] == 1  # run now: the failed attempt had written nothing
    assert read["product"]["id"] == product
    assert (ready_again[0], ready_again[1]["status"]) == (200, "ready")


# ---------------------------------------------------------------- the API killed


# Each kind of mutation in the storm: its document and its payload's read-model field.
KINDS = {
    "place": (PLACE_ORDER, "order"),
    "pay": (PAY_ORDER, "order"),
    "cancel": (CANCEL_ORDER, "order"),
    "restock": (RESTOCK_PRODUCT, "product"),
}


@dataclass(frozen=True)
class Mutation:
    kind: str  # a key of KINDS
    input: dict[str, Any]

    @property
    def document(self) -> str:
        return KINDS[self.kind][0]

    @property
    def answered_once_projected(self) -> str:
        """The document asking for the read-model field too: answered only once the
        projection has applied the command, well after the commit (a window for the kill)."""
        document, field = KINDS[self.kind]
        return document.replace(f"{field}Id }}", f"{field}Id {field} {{ id }} }}")


def command_result(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload without its read-model field (which shows the projection as it is now)."""
    return {name: value for name, value in payload.items() if name not in ("order", "product")}


@dataclass
class Shop:
    """What the storm of mutations runs over."""

    customers: list[str] = field(default_factory=list)
    initial_stock: dict[str, int] = field(default_factory=dict)
    orders: list[dict[str, Any]] = field(default_factory=list)  # inputs of placed orders
    order_ids: list[str] = field(default_factory=list)


async def open_shop(gql: GraphQLClient, rng: random.Random) -> Shop:
    shop = Shop()
    for i in range(4):
        shop.customers.append(await gql.customer(f"k{i}@example.com", f"Kill {i}"))
    for i in range(5):
        shop.initial_stock[await gql.product(f"K-{i}", f"Kept {i}", 100, 500)] = 500
    for _ in range(30):
        order = {"customerId": rng.choice(shop.customers), "lines": lines(shop, rng)}
        shop.orders.append(order)
        shop.order_ids.append((await gql.ok(PLACE_ORDER, **order))["orderId"])
    return shop


def lines(shop: Shop, rng: random.Random) -> list[dict[str, Any]]:
    products = rng.sample(sorted(shop.initial_stock), rng.randint(1, 3))
    return [{"productId": p, "quantity": rng.randint(1, 3)} for p in products]


def storm(shop: Shop, rng: random.Random) -> list[Mutation]:
    """Mutations that are all accepted whatever order they run in, each with a commandId."""
    products = sorted(shop.initial_stock)
    places = [{"customerId": rng.choice(shop.customers), "lines": lines(shop, rng)}
              for _ in range(60)]  # fmt: skip
    restocks = [{"productId": rng.choice(products), "quantity": rng.randint(1, 9)}
                for _ in range(25)]  # fmt: skip
    mutations = [
        *(Mutation("place", order) for order in places),
        *(Mutation("pay", {"orderId": order}) for order in shop.order_ids[:15]),
        *(Mutation("cancel", {"orderId": order}) for order in shop.order_ids[15:]),
        *(Mutation("restock", restock) for restock in restocks),
    ]
    rng.shuffle(mutations)
    return [
        Mutation(m.kind, {"commandId": f"storm-{i}", **m.input}) for i, m in enumerate(mutations)
    ]


async def fire_and_kill(
    gql: GraphQLClient, mutations: list[Mutation], kill: Callable[[], None], stores: Stores
) -> list[dict[str, Any] | None]:
    """Send every mutation at once; once a quarter are answered, kill the server as soon as a
    mutation has committed but not been answered (its answer waits for the projections), so
    the kill catches an answer on its way. The payload of each answered one, None for the
    others."""
    answered: set[str] = set()
    enough = asyncio.Event()

    async def send(mutation: Mutation) -> dict[str, Any] | None:
        try:
            payload = await gql.mutate(mutation.answered_once_projected, **mutation.input)
        except httpx.TransportError:
            return None
        answered.add(mutation.input["commandId"])
        if len(answered) >= len(mutations) // 4:
            enough.set()
        return payload

    sent = asyncio.gather(*(send(m) for m in mutations))
    await enough.wait()
    deadline = asyncio.get_running_loop().time() + 10
    while asyncio.get_running_loop().time() < deadline:
        if set(await recorded(stores)) - answered:
            break
        await asyncio.sleep(0.001)
    kill()
    return await sent


async def recorded(stores: Stores) -> dict[str, dict[str, Any]]:
    """commandId -> the result the idempotency record holds, for every committed command."""
    async with stores.write_engine.connect() as connection:
        rows = await connection.execute(text("SELECT command_id, result FROM idempotency"))
        return {row.command_id: row.result for row in rows}


async def logged_events(stores: Stores) -> list[EventRecord]:
    return await whole_log(stores.write_engine)


def stock_from_log(events: list[EventRecord]) -> dict[str, int]:
    """Per product: initial stock + restocks - reserved by orders + released by cancellations."""
    stock: Counter[str] = Counter()
    for recorded in events:
        for product, change in stock_changes(recorded.event):
            stock[product] += change
    return dict(stock)


def stock_expected(shop: Shop, mutations: list[Mutation]) -> dict[str, int]:
    """The same, from what the client asked for (every mutation applied once)."""
    stock = Counter(shop.initial_stock)
    placed = dict(zip(shop.order_ids, shop.orders, strict=True))
    for order in [*shop.orders, *(m.input for m in mutations if m.kind == "place")]:
        stock.subtract({line["productId"]: line["quantity"] for line in order["lines"]})
    for m in mutations:
        if m.kind == "restock":
            stock[m.input["productId"]] += m.input["quantity"]
        elif m.kind == "cancel":
            stock.update(
                {ln["productId"]: ln["quantity"] for ln in placed[m.input["orderId"]]["lines"]}
            )
    return dict(stock)


async def audit(stores: Stores, setup_events: int, results: dict[str, dict[str, Any]]) -> None:
    """Every recorded command has exactly one event, no event lacks its command, and the
    stock is what the log says, never negative."""
    events = await logged_events(stores)
    storm_events = Counter(
        (str(e.aggregate_id), e.aggregate_version) for e in events[setup_events:]
    )
    commanded = Counter((r["id"], r["v"]) for r in results.values())
    assert storm_events == commanded
    stock = await stock_in_store(stores)
    assert stock == stock_from_log(events)
    assert min(stock.values()) >= 0


async def stock_in_store(stores: Stores) -> dict[str, int]:
    async with stores.write_engine.connect() as connection:
        rows = await connection.execute(text("SELECT id::text, stock FROM products"))
        return {product: stock for product, stock in rows}


@pytest.mark.slow
async def test_the_api_killed_mid_mutations_commits_each_whole_or_not_and_retries_answer_right(
    settings: Settings, process: Api, stores: Stores, shop_env: dict[str, str],
    tmp_path: Path,
) -> None:  # fmt: skip
    rng = random.Random(9)
    # Answers wait for the projections, and the relay, once busy, waits 1 s before each pass:
    # answers come in waves with commands committed and unanswered in between, for the kill
    # to catch. (Without it, commands that commit together are answered together, and the
    # storm can be answered whole between two looks at the idempotency records.)
    env = {**shop_env, "SHOP_LOG_LEVEL": "warning", "SHOP_RELAY_GATHER_MS": "1000"}
    processes = ShopProcesses(env, tmp_path)
    try:
        port = free_port()
        first = processes.start("api-1", "serve", "--port", str(port))
        await until_answering(first, Address.loopback(port))
        async with httpx.AsyncClient(timeout=60) as client:
            gql = GraphQLClient(f"http://127.0.0.1:{port}/graphql", client)
            shop = await open_shop(gql, rng)
            setup_events = len(await logged_events(stores))
            mutations = storm(shop, rng)
            answers = await fire_and_kill(gql, mutations, lambda: processes.kill("api-1"), stores)
        committed = await recorded(stores)
        await audit(stores, setup_events, committed)  # whole or nothing, at the crash

        port = free_port()
        second = processes.start("api-2", "serve", "--port", str(port))
        await until_answering(second, Address.loopback(port))
        async with httpx.AsyncClient(timeout=60) as client:
            gql = GraphQLClient(f"http://127.0.0.1:{port}/graphql", client)
            retries = await asyncio.gather(*(gql.mutate(m.document, **m.input) for m in mutations))
    finally:
        processes.stop()

    ids = [m.input["commandId"] for m in mutations]
    unanswered = {i for i, answer in zip(ids, answers, strict=True) if answer is None}
    assert set(ids) - unanswered <= set(committed)  # whatever was answered had committed
    assert unanswered & set(committed), "the kill caught no answer on its way"
    for command_id, answer, retry in zip(ids, answers, retries, strict=True):
        assert retry["userErrors"] == [], (command_id, retry)
        if answer is not None:  # the first result, not a second run
            assert command_result(retry) == command_result(answer), command_id
        if command_id in committed:  # answered or not: the stored result
            stored = committed[command_id]
            aggregate = retry.get("orderId", retry.get("productId"))
            token = versions_of(process, retry["consistencyToken"])
            assert (aggregate, retry["version"], token) == (
                stored["id"], stored["v"], load_versions(stored["a"])
            ), command_id  # fmt: skip
    results = await recorded(stores)
    assert sorted(results) == sorted(ids)
    await audit(stores, setup_events, results)
    assert await stock_in_store(stores) == stock_expected(shop, mutations)
