"""The HTTP and WebSocket surface of a running server: GraphQL, GraphiQL, health, readiness."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from app.config.settings import Role, Settings
from devtools.servers import ServerUnderTest, running_server
from devtools.ws_client import TRANSPORT_WS, subscriber


async def test_typename_answers_over_post(server: ServerUnderTest) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(server.graphql_url, json={"query": "{ __typename }"})
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_queries_are_answered_over_get(server: ServerUnderTest) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(server.graphql_url, params={"query": "{ service { name } }"})
    assert response.json() == {"data": {"service": {"name": "cqrs-shop"}}}


async def test_graphiql_is_served_to_browsers(server: ServerUnderTest) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(server.graphql_url, headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert "graphiql" in response.text.lower()


async def test_every_response_carries_a_request_id(server: ServerUnderTest) -> None:
    async with httpx.AsyncClient() as client:
        given = await client.get(f"{server.base_url}/healthz", headers={"X-Request-ID": "abc-1"})
        made = await client.get(f"{server.base_url}/healthz")
    assert given.headers["x-request-id"] == "abc-1"
    assert len(made.headers["x-request-id"]) == 32


async def test_healthz_and_readyz_report_ok(server: ServerUnderTest) -> None:
    async with httpx.AsyncClient() as client:
        health = await client.get(f"{server.base_url}/healthz")
        ready = await client.get(f"{server.base_url}/readyz")
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "role": "all",
        "write_store": "ok",
        "read_store": "ok",
        "redis": "ok",
    }


async def test_readyz_is_degraded_when_redis_does_not_answer(settings: Settings) -> None:
    # Commands still commit and queries still read; only the projections fall behind.
    unreachable = settings.model_copy(update={"redis_url": "redis://127.0.0.1:9/0"})
    async with running_server(unreachable) as server, httpx.AsyncClient() as client:
        ready = await client.get(f"{server.base_url}/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "degraded"
    assert body["redis"] != "ok"
    assert (body["write_store"], body["read_store"]) == ("ok", "ok")


@pytest.mark.parametrize("subprotocol", ["graphql-transport-ws", "graphql-ws"])
async def test_websocket_speaks_both_subprotocols(
    server: ServerUnderTest, subprotocol: str
) -> None:
    async with websockets.connect(server.ws_url, subprotocols=[subprotocol]) as socket:  # type: ignore[list-item]
        await socket.send(json.dumps({"type": "connection_init", "payload": {}}))
        ack = json.loads(await socket.recv())
    assert socket.subprotocol == subprotocol
    assert ack["type"] == "connection_ack"


async def test_a_query_role_process_refuses_mutations(settings: Settings) -> None:
    query_role = settings.model_copy(update={"role": Role.QUERY})
    async with running_server(query_role) as server, httpx.AsyncClient() as client:
        refused = await client.post(server.graphql_url, json={"query": "mutation { __typename }"})
        answered = await client.post(server.graphql_url, json={"query": "{ service { role } }"})
    messages = [error["message"] for error in refused.json()["errors"]]
    assert any("serves the query role" in message for message in messages)
    assert answered.json() == {"data": {"service": {"role": "query"}}}


async def test_a_command_role_process_refuses_subscriptions(settings: Settings) -> None:
    command_role = settings.model_copy(update={"role": Role.COMMAND})
    async with (
        running_server(command_role) as server,
        httpx.AsyncClient() as client,
        subscriber(server.ws_url, TRANSPORT_WS) as ws,
    ):
        await ws.subscribe("subscription { projectionStatus { name } }")
        refused = await ws.message()
        answered = await client.post(server.graphql_url, json={"query": "{ __typename }"})
    assert refused["type"] == "error"
    assert any("serves the command role" in error["message"] for error in refused["payload"])
    assert answered.json() == {"data": {"__typename": "Query"}}


async def test_metrics_count_commands_by_name_and_outcome(server: ServerUnderTest) -> None:
    mutation = "mutation($i: RegisterCustomerInput!) { registerCustomer(input: $i) { version } }"
    async with httpx.AsyncClient() as client:
        for email in ("m@example.com", "m@example.com", "bad"):
            variables = {"i": {"email": email, "name": "M"}}
            await client.post(server.graphql_url, json={"query": mutation, "variables": variables})
        text = (await client.get(f"{server.base_url}/metrics")).text
    assert 'shop_commands_total{command="RegisterCustomer",outcome="accepted"} 1.0' in text
    assert 'shop_commands_total{command="RegisterCustomer",outcome="already_exists"} 1.0' in text
    assert 'shop_commands_total{command="RegisterCustomer",outcome="validation"} 1.0' in text
    assert 'shop_command_seconds_count{command="RegisterCustomer",outcome="accepted"} 1.0' in text


async def test_metrics_report_the_pipeline_as_status_does(server: ServerUnderTest) -> None:
    mutation = (
        'mutation { registerCustomer(input: {email: "g@example.com", name: "G"}) { version } }'
    )
    async with httpx.AsyncClient() as client:
        await client.post(server.graphql_url, json={"query": mutation})
        # One scrape reads the outbox before the projections: the event may be applied
        # by the time the projections are read and still counted unpublished a moment
        # before (the relay marks it after the stream has it). Wait for both.
        for _ in range(200):
            text = (await client.get(f"{server.base_url}/metrics")).text
            applied = 'shop_projection_events_applied{projection="customer_summary"} 1.0'
            if applied in text and "shop_outbox_backlog 0.0" in text:
                break
            await asyncio.sleep(0.05)
    assert 'shop_projection_events_applied{projection="customer_summary"} 1.0' in text
    assert 'shop_projection_lag_events{projection="order_view"}' in text
    assert 'shop_projection_dead_letters{projection="daily_sales"} 0.0' in text
    assert "shop_outbox_backlog 0.0" in text
