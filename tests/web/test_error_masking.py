"""An unexpected error reaches the client as a code and a request id; the log has the rest."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text

from app.config.logs import RequestIdLogFilter
from app.runtime.bootstrap import Stores
from devtools.graphql_client import GraphQLClient

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
