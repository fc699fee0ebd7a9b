"""Configured limits on documents and bodies, the introspection switch, and that the limits
keep strawberry's parser and validation caches working."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from strawberry.extensions.parser_cache import _get_parse_cache
from strawberry.extensions.validation_cache import _get_validate_cache

from app.config.settings import Settings
from devtools.graphql_client import GraphQLClient
from devtools.servers import ServerUnderTest, running_server

DEEP = "{ customers { edges { node { orders { edges { node { lines { sku } } } } } } } }"  # 8


@pytest.fixture
async def strict(settings: Settings) -> AsyncIterator[tuple[ServerUnderTest, GraphQLClient]]:
    limited = settings.model_copy(
        update={
            "max_query_depth": 5,
            "max_query_aliases": 2,
            "max_query_tokens": 100,
            "max_body_bytes": 2048,
            "introspection": False,
        }
    )
    async with running_server(limited) as server, httpx.AsyncClient(timeout=30) as http:
        yield server, GraphQLClient(server.graphql_url, http)


async def messages(gql: GraphQLClient, query: str) -> list[str]:
    body = await gql.execute(query)
    assert body.get("data") is None, body
    return [error["message"] for error in body["errors"]]


async def test_the_depth_limit_is_the_configured_one(
    strict: tuple[ServerUnderTest, GraphQLClient], gql: GraphQLClient
) -> None:
    _, limited = strict
    assert await messages(limited, DEEP) == ["'anonymous' exceeds maximum operation depth of 5"]
    assert "errors" not in await gql.execute(DEEP)  # the default (12) allows it


async def test_the_alias_limit_is_the_configured_one(
    strict: tuple[ServerUnderTest, GraphQLClient],
) -> None:
    _, limited = strict
    three = "{ a: products { totalCount } b: products { totalCount } c: products { totalCount } }"
    assert await messages(limited, three) == [
        "3 aliases found. Allowed: 2",
    ]
    two = "{ a: products { totalCount } b: products { totalCount } }"
    assert (await limited.data(two))["b"] == {"totalCount": 0}


async def test_the_token_limit_is_the_configured_one(
    strict: tuple[ServerUnderTest, GraphQLClient],
) -> None:
    _, limited = strict
    many = "{ " + " ".join(["__typename"] * 120) + " }"
    (message,) = await messages(limited, many)
    assert "more than 100 tokens" in message


async def test_introspection_can_be_switched_off(
    strict: tuple[ServerUnderTest, GraphQLClient], gql: GraphQLClient
) -> None:
    server, limited = strict
    refusals = await messages(limited, "{ __schema { queryType { name } } }")
    assert "introspection has been disabled" in refusals[0]
    assert (await limited.data("{ __typename }")) == {"__typename": "Query"}
    # Without introspection GraphiQL cannot work, so it is not offered either.
    async with httpx.AsyncClient(timeout=30) as http:
        page = await http.get(server.graphql_url, headers={"Accept": "text/html"})
    assert "graphiql" not in page.text.lower()
    default = await gql.data("{ __schema { queryType { name } } }")
    assert default["__schema"]["queryType"]["name"] == "Query"


async def test_a_body_over_the_limit_is_refused_with_413_and_the_server_goes_on(
    strict: tuple[ServerUnderTest, GraphQLClient],
) -> None:
    server, limited = strict
    padding = " " * 4096
    async with httpx.AsyncClient(timeout=30) as http:
        declared = await http.post(server.graphql_url, json={"query": "{ __typename }" + padding})

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"query": "{ __typename }'
            for _ in range(8):
                yield padding.encode()
            yield b'"}'

        chunked = await http.post(
            server.graphql_url, content=chunks(), headers={"Content-Type": "application/json"}
        )
    for response in (declared, chunked):
        assert response.status_code == 413
        (error,) = response.json()["errors"]
        assert error["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
        assert "2048 bytes" in error["message"]
    assert await limited.data("{ __typename }") == {"__typename": "Query"}


async def test_the_limits_keep_the_parser_and_validation_caches_hitting(gql: GraphQLClient) -> None:
    parse, validate = _get_parse_cache(128), _get_validate_cache(128)
    query = "query CacheProbe { products(first: 3) { totalCount } }"
    await gql.data(query)
    parsed, validated = parse.cache_info().hits, validate.cache_info().hits
    for _ in range(3):
        await gql.data(query)
    assert parse.cache_info().hits >= parsed + 3
    assert validate.cache_info().hits >= validated + 3
