"""An unexpected error reaches the client as a code and a request id; the log has the rest."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any
from uuid import UUID

import pytest
import strawberry
from graphql import GraphQLError
from sqlalchemy import text
from strawberry.types import ExecutionResult

from app.adapters.postgres import DatabaseUnavailable
from app.config.logs import RequestIdLogFilter, current_request_id
from app.graphql.errors import ClientError, MaskUnexpectedErrors
from app.projections.change_keys import order_key
from app.projections.names import ProjectionName
from app.runtime.bootstrap import Api, Stores
from devtools.graphql_client import GraphQLClient
from devtools.servers import ServerUnderTest
from devtools.ws_client import PROTOCOLS, subscriber

PRODUCT_NAMES = "{ products { edges { node { id name } } } }"


async def test_an_unexpected_error_is_masked_with_a_request_id_and_logged_in_full(
    gql: GraphQLClient, stores: Stores, caplog: pytest.LogCaptureFixture
) -> None:
    await gql.product()
    # A read store broken behind the service's back: the SELECT fails in PostgreSQL.
    async with stores.read_engine.begin() as connection:
        await connection.execute(text("ALTER TABLE product_catalogue RENAME COLUMN name TO lost"))

    caplog.handler.addFilter(RequestIdLogFilter())  # as the service's own log handler does
    with caplog.at_level(logging.ERROR):
        response = await gql.client.post(gql.url, json={"query": PRODUCT_NAMES})

    request_id = response.headers["x-request-id"]
    assert response.status_code == 200
    [error] = response.json()["errors"]
    assert error["message"] == f"Internal error; quote request id {request_id} when reporting it."
    assert error["extensions"] == {"code": "INTERNAL", "requestId": request_id}
    for secret in ("product_catalogue", "lost", "does not exist", "asyncpg", "Traceback"):
        assert secret not in response.text
    # The log has what the client was not told, under the same request id.
    [logged] = [r for r in caplog.records if "product_catalogue.name does not exist" in r.message]
    assert logged.request_id == request_id  # type: ignore[attr-defined]


# ---------------------------------------------------------------- subscriptions

# What a store failure may say: a URL with a password in it, as a driver error can.
SECRET = "hunter2-not-for-clients"
LEAKY_URL = f"postgresql://shop:{SECRET}@db.internal:5432/shop"
ORDER_UPDATED = "subscription($id: ID!) { orderUpdated(id: $id) { id status } }"


async def _fail_order_reads(stores: Stores) -> None:
    """From now on every read of order_view fails in PostgreSQL with the leaky URL in its
    message (the table is swapped for a view whose filter raises)."""
    async with stores.read_engine.begin() as connection:
        await connection.exec_driver_sql("ALTER TABLE order_view RENAME TO order_view_kept")
        await connection.exec_driver_sql(
            "CREATE FUNCTION fail_read() RETURNS boolean LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION 'cannot reach {LEAKY_URL}'; END $$"
        )
        await connection.exec_driver_sql(
            "CREATE VIEW order_view AS SELECT * FROM order_view_kept WHERE fail_read()"
        )


def _assert_masked(messages: list[dict[str, object]], request_id: str) -> None:
    text = json.dumps(messages)
    for leaked in (SECRET, "db.internal", "cannot reach", "asyncpg", "order_view", "Traceback"):
        assert leaked not in text, messages
    [error] = [e for m in messages for e in _errors_of(m)]
    assert error["message"] == f"Internal error; quote request id {request_id} when reporting it."
    assert error["extensions"] == {"code": "INTERNAL", "requestId": request_id}


def _errors_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    payload = message.get("payload")
    if isinstance(payload, list):  # graphql-transport-ws "error"
        return payload
    if isinstance(payload, dict):
        return list(payload.get("errors") or ([payload] if "message" in payload else []))
    return []


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_store_failure_in_an_open_subscription_is_masked_and_logged(
    server: ServerUnderTest, gql: GraphQLClient, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    api: Api = server.app.state.api
    order = await gql.order(await gql.customer(), (await gql.product(), 1))
    request_id = f"ws-{protocol}"
    async with subscriber(server.ws_url, protocol, {"X-Request-ID": request_id}) as ws:
        await ws.subscribe(ORDER_UPDATED, {"id": order["orderId"]})
        assert (await ws.data())["orderUpdated"]["status"] == "PLACED"
        await _fail_order_reads(api.stores)
        caplog.handler.addFilter(RequestIdLogFilter())
        with caplog.at_level(logging.ERROR):
            # As a projector's announcement would: the subscription re-reads, and fails.
            api.services.changes.dispatch(
                ProjectionName.ORDER_VIEW, [order_key(UUID(order["orderId"]))]
            )
            messages = await ws.until_done()
    _assert_masked(messages, request_id)
    [logged] = [r for r in caplog.records if SECRET in r.getMessage()]
    assert logged.request_id == request_id  # type: ignore[attr-defined]


@strawberry.type
class _Query:
    ok: bool = True


@strawberry.type
class _Subscription:
    @strawberry.subscription
    async def failing(self, kind: str) -> AsyncGenerator[int, None]:
        yield 1
        if kind == "client":
            raise ClientError("the cursor is not one of ours")
        if kind == "unavailable":
            raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {LEAKY_URL}")
        raise RuntimeError(f"cannot reach {LEAKY_URL}")


MASKED = strawberry.Schema(_Query, subscription=_Subscription, extensions=[MaskUnexpectedErrors])


async def _second_result(kind: str) -> GraphQLError:
    results = await MASKED.subscribe(f'subscription {{ failing(kind: "{kind}") }}')
    assert not isinstance(results, ExecutionResult)
    async with aclosing(results) as stream:
        assert (await anext(stream)).data == {"failing": 1}
        [error] = (await anext(stream)).errors or []
    return error


async def test_an_error_raised_by_a_subscription_generator_is_masked() -> None:
    token = current_request_id.set("r-1")
    try:
        internal, unavailable = await _second_result("bug"), await _second_result("unavailable")
    finally:
        current_request_id.reset(token)
    assert (internal.message, internal.extensions) == (
        "Internal error; quote request id r-1 when reporting it.",
        {"code": "INTERNAL", "requestId": "r-1"},
    )
    assert unavailable.extensions == {"code": "UNAVAILABLE", "requestId": "r-1"}
    assert SECRET not in f"{internal.formatted} {unavailable.formatted}"


async def test_a_client_error_raised_by_a_subscription_generator_is_shown() -> None:
    error = await _second_result("client")
    assert error.message == "the cursor is not one of ours"
