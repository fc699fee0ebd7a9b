"""Fuzz the running server with operations built from its own schema
(tests/support/fuzz_operations.py). Every answer must be sound (tests/support/client_errors.py):
no 5xx, JSON, no leaked internals, never the masked INTERNAL error; and a mutation that was
refused must have written nothing.

Hypothesis draws the operations in a worker thread; each is sent and checked on the test's
event loop, where the server runs. The run is derandomized, so CI sees the same operations.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.strategies import SearchStrategy

from app.config.settings import Settings
from devtools.graphql_client import PAY_ORDER, GraphQLClient
from devtools.servers import ServerUnderTest, running_server
from devtools.store_snapshot import write_store
from tests.support.client_errors import sound
from tests.support.fuzz_operations import Known, Operation, mutations, queries

QUERY_EXAMPLES = 250
MUTATION_EXAMPLES = 150


# ------------------------------------------------------------------ running


@dataclass(frozen=True)
class Target:
    server: ServerUnderTest
    http: httpx.AsyncClient
    known: Known


@pytest.fixture
async def target(settings: Settings) -> AsyncIterator[Target]:
    """A server with a customer, products and orders in it; consistentWith waits are short,
    so a forged token that names a real event type does not hold an example up for long."""
    quick = settings.model_copy(update={"consistency_timeout_ms": 200})
    async with running_server(quick) as server, httpx.AsyncClient(timeout=60) as http:
        gql = GraphQLClient(server.graphql_url, http)
        customer = await gql.customer()
        products = [await gql.product(sku=f"SKU-{n}", stock=1000) for n in range(2)]
        orders = [(await gql.order(customer, (products[0], 1)))["orderId"] for _ in range(3)]
        await gql.ok(PAY_ORDER, orderId=orders[1])
        yield Target(server, http, Known((customer,), tuple(products), tuple(orders)))


async def send(target: Target, operation: Operation) -> httpx.Response:
    url = target.server.graphql_url
    if operation.over_get:
        params = {"query": operation.document, "variables": json.dumps(operation.variables)}
        return await target.http.get(url, params=params, headers={"Accept": "application/json"})
    body = json.dumps({"query": operation.document, "variables": operation.variables})
    return await target.http.post(url, content=body, headers={"Content-Type": "application/json"})


async def fuzz(
    operations: SearchStrategy[Operation],
    check: Callable[[Operation], Coroutine[Any, Any, None]],
    examples: int,
) -> None:
    """Check `examples` operations drawn by hypothesis (in a thread) on this event loop."""
    loop = asyncio.get_running_loop()

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(operations)
    def each(operation: Operation) -> None:
        asyncio.run_coroutine_threadsafe(check(operation), loop).result()

    await asyncio.to_thread(each)


async def test_any_query_gets_a_sound_answer(target: Target) -> None:
    async def check(operation: Operation) -> None:
        sound(await send(target, operation))

    await fuzz(queries(target.known), check, QUERY_EXAMPLES)


async def test_any_mutation_gets_a_sound_answer_and_a_refused_one_writes_nothing(
    target: Target,
) -> None:
    engine = target.server.app.state.api.stores.write_engine

    async def check(operation: Operation) -> None:
        before = await write_store(engine)
        body = sound(await send(target, operation))
        payload = (body.get("data") or {}).get(operation.root)
        if payload is not None and not payload["userErrors"]:
            return  # accepted: it may write
        if payload is not None:  # refused: the contract says every other field is null
            others = [v for k, v in payload.items() if k not in ("userErrors", "__typename")]
            assert all(value is None for value in others), (operation, payload)
        assert await write_store(engine) == before, (operation, body)

    await fuzz(mutations(target.known), check, MUTATION_EXAMPLES)
