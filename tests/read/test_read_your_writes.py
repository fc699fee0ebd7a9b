"""Read-your-writes: a read with a mutation's consistencyToken, and a payload's read model,
always see that mutation, under concurrent load; a wait that times out is bounded."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from app.config.settings import Role, Settings
from devtools.graphql_client import PAYLOAD_FIELDS, REGISTER_CUSTOMER, GraphQLClient
from devtools.servers import running_server
from tests.support.read_queries import CUSTOMER, ORDER

# Heavy load: run one after another with the other load tests (see pyproject addopts).
pytestmark = pytest.mark.xdist_group("load")

CLIENTS = 10
ROUNDS = 25  # each round is two mutations, each followed by a read: 500 writes in all

PLACE = f"""mutation($input: PlaceOrderInput!) {{ placeOrder(input: $input) {{
  {PAYLOAD_FIELDS} orderId order {{ id status version }} }} }}"""
PAY = f"""mutation($input: PayOrderInput!) {{ payOrder(input: $input) {{
  {PAYLOAD_FIELDS} orderId order {{ id status version }} }} }}"""
REGISTER_READING = f"""mutation($input: RegisterCustomerInput!) {{
  registerCustomer(input: $input) {{ {PAYLOAD_FIELDS} customerId customer {{ id }} }} }}"""


async def _check_read(
    gql: GraphQLClient, payload: dict[str, Any], status: str, version: int
) -> None:
    assert payload["order"] == {"id": payload["orderId"], "status": status, "version": version}
    variables = {"id": payload["orderId"], "token": payload["consistencyToken"]}
    order = (await gql.data(ORDER, variables))["order"]
    assert (order["status"], order["version"]) == (status, version)


async def _client(gql: GraphQLClient, customer: str, product: str) -> int:
    writes = 0
    for _ in range(ROUNDS):
        placed = await gql.ok(
            PLACE, customerId=customer, lines=[{"productId": product, "quantity": 1}]
        )
        await _check_read(gql, placed, "PLACED", 1)
        paid = await gql.ok(PAY, orderId=placed["orderId"])
        await _check_read(gql, paid, "PAID", 2)
        writes += 2
    return writes


async def test_a_token_always_reads_its_own_write_under_load(gql: GraphQLClient) -> None:
    product = await gql.product(stock=CLIENTS * ROUNDS)
    customers = [await gql.customer(email=f"c{n}@example.com") for n in range(CLIENTS)]
    writes = await asyncio.gather(*(_client(gql, c, product) for c in customers))
    assert sum(writes) == 2 * CLIENTS * ROUNDS


async def test_waits_that_time_out_are_bounded(settings: Settings) -> None:
    # No process runs the pipeline here: the projections never apply anything.
    quick = settings.model_copy(update={"consistency_timeout_ms": 300})
    command = quick.model_copy(update={"role": Role.COMMAND})
    query = quick.model_copy(update={"role": Role.QUERY})
    async with (
        running_server(command) as writer,
        running_server(query) as reader,
        httpx.AsyncClient(timeout=30) as http,
    ):
        write = GraphQLClient(writer.graphql_url, http)
        read = GraphQLClient(reader.graphql_url, http)
        started = time.monotonic()
        registered = await write.ok(REGISTER_READING, email="late@example.com", name="Late")
        assert registered["customer"] is None  # the contract: null only if the wait timed out
        assert time.monotonic() - started >= 0.3

        started = time.monotonic()
        variables = {"id": registered["customerId"], "token": registered["consistencyToken"]}
        assert (await read.data(CUSTOMER, variables))["customer"] is None  # read anyway
        assert 0.3 <= time.monotonic() - started < 5
        plain = await write.ok(REGISTER_CUSTOMER, email="plain@example.com", name="Plain")
        assert plain["consistencyToken"]
