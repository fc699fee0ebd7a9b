"""Bad requests and bad values, case by case: each is refused with a clear client error in
JSON, never a 5xx or a masked INTERNAL error, and a refused mutation writes nothing."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from graphql import (
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLType,
)

from app.config.settings import Settings
from app.runtime.bootstrap import Stores
from devtools import store_snapshot
from devtools.graphql_client import PAY_ORDER, PAYLOAD_FIELDS, REGISTER_CUSTOMER, GraphQLClient
from devtools.servers import ServerUnderTest
from tests.support.client_errors import post_json, refusal, sound
from tests.support.fuzz_operations import SDL, forged
from tests.support.read_queries import (
    CUSTOMER,
    CUSTOMER_ORDERS,
    CUSTOMERS,
    ORDER,
    ORDERS,
    PRODUCT,
    PRODUCTS,
    SALES_REPORT,
    connection_of,
    error_of,
    settle,
    shown_customer,
    shown_product,
)

# ------------------------------------------------------------------ the HTTP request itself

JSON = "application/json"
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
NOT_A_GRAPHQL_REQUEST = {
    "malformed JSON": (JSON, b'{"query": "{ __typename }"'),
    "an empty body": (JSON, b""),
    "a body not in UTF-8": (JSON, b'{"query": "{ __typename \xff\xfe }"}'),
    "a JSON array (a batch)": (JSON, b'[{"query": "{ __typename }"}]'),
    "a JSON number": (JSON, b"42"),
    "a JSON string": (JSON, b'"{ __typename }"'),
    "JSON null": (JSON, b"null"),
    "JSON nested past the recursion limit": (
        JSON, b'{"query": "{ __typename }", "variables": {"v": ' + DEEP_JSON + b"}}"
    ),
    "query missing": (JSON, b'{"variables": {}}'),
    "query a number": (JSON, b'{"query": 5}'),
    "query an object": (JSON, b'{"query": {"text": "{ __typename }"}}'),
    "variables a list": (JSON, b'{"query": "{ __typename }", "variables": [1]}'),
    "variables a string": (JSON, b'{"query": "{ __typename }", "variables": "{}"}'),
    "extensions a string": (JSON, b'{"query": "{ __typename }", "extensions": "x"}'),
    "text/plain": ("text/plain", b'{"query": "{ __typename }"}'),
    "form-encoded": ("application/x-www-form-urlencoded", b"query=%7B+__typename+%7D"),
    "multipart": ("multipart/form-data; boundary=x", b'--x\r\nContent-Disposition: form-data; '
                  b'name="query"\r\n\r\n{ __typename }\r\n--x--\r\n'),
    "no content type": (None, b'{"query": "{ __typename }"}'),
}  # fmt: skip


async def test_a_request_that_is_not_graphql_over_http_is_a_400_in_json(
    gql: GraphQLClient,
) -> None:
    wrong = {}
    for case, (content_type, body) in NOT_A_GRAPHQL_REQUEST.items():
        headers = {} if content_type is None else {"Content-Type": content_type}
        response = await gql.client.post(gql.url, content=body, headers=headers)
        try:
            refusal(response)
        except AssertionError as error:
            wrong[case] = str(error)
    assert wrong == {}
    assert await gql.data("{ __typename }") == {"__typename": "Query"}


async def test_an_operation_its_method_cannot_carry_is_refused_and_writes_nothing(
    gql: GraphQLClient, stores: Stores
) -> None:
    """A mutation over GET (a link or a prefetch must not write); a subscription over plain
    HTTP (subscriptions are served over the WebSocket)."""
    before = await store_snapshot.write_store(stores.write_engine)
    mutation = 'mutation { registerCustomer(input: {email: "g@x.com", name: "G"}) { version } }'
    subscription = "subscription { projectionStatus { name } }"
    refused = [
        (await gql.client.get(gql.url, params={"query": mutation}), "mutations"),
        (await gql.client.get(gql.url, params={"query": subscription}), "subscriptions"),
        (await gql.client.post(gql.url, json={"query": subscription}), "subscriptions"),
    ]
    for response, kind in refused:
        assert f"{kind} are not allowed" in refusal(response)["message"]
    assert await store_snapshot.write_store(stores.write_engine) == before


async def test_a_body_over_the_default_limit_is_a_413_and_one_at_the_limit_is_served(
    server: ServerUnderTest, gql: GraphQLClient, settings: Settings
) -> None:
    def body_of(size: int) -> bytes:
        # JSON whitespace pads the body without making the document any bigger.
        head, tail = b'{"query": "{ __typename }"', b"}"
        return head + b" " * (size - len(head) - len(tail)) + tail

    limit = settings.max_body_bytes
    headers = {"Content-Type": "application/json"}
    at_limit = await gql.client.post(gql.url, content=body_of(limit), headers=headers)
    over = await gql.client.post(gql.url, content=body_of(limit + 1), headers=headers)
    assert at_limit.json() == {"data": {"__typename": "Query"}}
    assert refusal(over, 413)["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert (await gql.client.get(f"{server.base_url}/healthz")).status_code == 200
    assert await gql.data("{ __typename }") == {"__typename": "Query"}


# ------------------------------------------------------------------ documents over the limits


def _nested(depth: int) -> str:
    """Customer.orders as deep as the schema goes (7), then unknown fields down to `depth`."""
    inner = "leaf"
    for level in range(depth - 7):
        inner = f"level{level} {{ {inner} }}"
    schema_deep = "customers { edges { node { orders { edges { node { lines { % } } } } } } }"
    return "{ " + schema_deep.replace("%", inner) + " }"


def _aliased(count: int) -> str:
    return "{ " + " ".join(f"a{i}: products {{ totalCount }}" for i in range(count)) + " }"


async def test_a_document_over_a_default_limit_is_refused_before_it_runs(
    gql: GraphQLClient, stores: Stores
) -> None:
    before = await store_snapshot.write_store(stores.write_engine)
    register = 'registerCustomer(input: {{email: "{0}@example.com", name: "N"}}) {{ version }}'
    over_the_limits = {
        _nested(20): "exceeds maximum operation depth of 12",
        _aliased(300): "300 aliases found. Allowed: 30",
        "{ " + "__typename " * 2500 + "}": "more than 2000 tokens",
        "mutation { " + " ".join(f"a{i}: " + register.format(i) for i in range(31)) + " }": (
            "31 aliases found"
        ),
        "mutation { " + register.format("pad") + " __typename" * 2000 + " }": "more than 2000",
    }
    for document, complaint in over_the_limits.items():
        body = sound(await gql.client.post(gql.url, json={"query": document}))
        assert body.get("data") is None, body
        assert any(complaint in error["message"] for error in body["errors"]), body
    assert await store_snapshot.write_store(stores.write_engine) == before


# ------------------------------------------------------------------ cursors and tokens


async def test_truncated_and_unsendable_cursors_are_validation_errors(gql: GraphQLClient) -> None:
    customer = await shown_customer(gql)
    product = await shown_product(gql)
    await settle(gql, await gql.order(customer, (product, 1)))
    lists = [(ORDERS, {}), (CUSTOMERS, {}), (PRODUCTS, {}), (CUSTOMER_ORDERS, {"id": customer})]
    for document, variables in lists:
        cursor = connection_of(await gql.data(document, {**variables, "first": 1}))["pageInfo"][
            "endCursor"
        ]
        for bad in (cursor[:-1], cursor[:-2], cursor[: len(cursor) // 2], cursor[:3]):
            error = await error_of(gql, document, **variables, after=bad)
            assert error["extensions"]["code"] == "VALIDATION", (document, bad, error)
            assert "after" in error["message"]
    # Well-formed cursors holding what no driver can send: a lone surrogate, a time that is
    # outside years 1..9999 once in UTC.
    unsendable = [
        (PRODUCTS, "products:name", "\ud800"),
        (ORDERS, "orders:newest", "0001-01-01T00:00+01:00"),
        (CUSTOMERS, "customers:newest", "9999-12-31T23:00-05:00"),
    ]
    for document, ordering, value in unsendable:
        bad = forged({"v": 1, "o": ordering, "k": [value, "0" * 32]})
        error = await error_of(gql, document, after=bad)
        assert error["extensions"]["code"] == "VALIDATION", (bad, error)


async def test_truncated_and_odd_consistency_tokens_are_validation_errors(
    gql: GraphQLClient,
) -> None:
    token = (await gql.ok(REGISTER_CUSTOMER, email="t@example.com", name="T"))["consistencyToken"]
    some_id = "00000000-0000-0000-0000-000000000000"
    fields = [
        (ORDER, {"id": some_id}), (CUSTOMER, {"id": some_id}), (PRODUCT, {"id": some_id}),
        (ORDERS, {}), (CUSTOMERS, {}), (PRODUCTS, {}),
        (SALES_REPORT, {"from": "2026-01-01", "to": "2026-01-02"}),
    ]  # fmt: skip
    bad_tokens = [
        token[:-1], token[: len(token) // 2], "\x00", token[:5] + "\x00" + token[5:],
        "\ud800", "\u202e" + token, "x" * 10_000, forged({"f": 1, "a": [[[[[[]]]]]]}),
        forged({"f": 1, "a": [["Customer", "0" * 32, 2**80, "CustomerRegistered"]]}),
    ]  # fmt: skip
    for document, variables in fields:
        for bad in bad_tokens:
            response = await post_json(
                gql.client, gql.url, {"query": document, "variables": {**variables, "token": bad}}
            )
            (error,) = sound(response)["errors"]
            assert error["extensions"]["code"] == "VALIDATION", (document, bad, error)
            assert "consistentWith" in error["message"]


# ------------------------------------------------------------------ strings in mutations


@dataclass(frozen=True)
class World:
    customer: str
    product: str
    placed: str
    paid: str


@pytest.fixture
async def world(gql: GraphQLClient) -> World:
    customer = await gql.customer()
    product = await gql.product(stock=100)
    placed = (await gql.order(customer, (product, 1)))["orderId"]
    paid = (await gql.order(customer, (product, 1)))["orderId"]
    await gql.ok(PAY_ORDER, orderId=paid)
    return World(customer, product, placed, paid)


def valid_inputs(world: World) -> dict[str, dict[str, Any]]:
    """An input each mutation accepts, so a bad value put into it is its only fault."""
    return {
        "registerCustomer": {"email": "new@example.com", "name": "New"},
        "createProduct": {"sku": "NEW-1", "name": "New", "priceCents": 1, "stock": 1},
        "changeProductPrice": {"productId": world.product, "priceCents": 5},
        "restockProduct": {"productId": world.product, "quantity": 1},
        "placeOrder": {
            "customerId": world.customer,
            "lines": [{"productId": world.product, "quantity": 1}],
        },
        "payOrder": {"orderId": world.placed},
        "shipOrder": {"orderId": world.paid},
        "cancelOrder": {"orderId": world.placed, "reason": "changed my mind"},
    }  # fmt: skip


def text_paths(
    type_: GraphQLType, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], str]]:
    """Every String or ID field of an input type (in a list, its first item's), by path."""
    if isinstance(type_, GraphQLNonNull):
        yield from text_paths(type_.of_type, path)
    elif isinstance(type_, GraphQLList):
        yield from text_paths(type_.of_type, (*path, "0"))
    elif isinstance(type_, GraphQLScalarType) and type_.name in ("String", "ID"):
        yield path, type_.name
    elif isinstance(type_, GraphQLInputObjectType):
        for name, field in type_.fields.items():
            yield from text_paths(field.type, (*path, name))


def with_value(input: dict[str, Any], path: tuple[str, ...], spoil: Any) -> dict[str, Any]:
    """A copy of `input` with the value at `path` (given or "command-1") spoiled."""
    copy: dict[str, Any] = json.loads(json.dumps(input))
    *parents, last = path
    holder: Any = copy
    for step in parents:
        holder = holder[int(step)] if isinstance(holder, list) else holder[step]
    holder[last] = spoil(holder.get(last, "command-1"))
    return copy


def every_text_input(world: World) -> Iterator[tuple[str, dict[str, Any], tuple[str, ...], str]]:
    """(mutation, valid input, path, scalar) for every String and ID field of every mutation."""
    inputs = valid_inputs(world)
    assert SDL.mutation_type is not None
    assert set(SDL.mutation_type.fields) == set(inputs)
    for name, field in SDL.mutation_type.fields.items():
        for path, scalar in text_paths(field.args["input"].type):
            yield name, inputs[name], path, scalar


def payload_of(mutation: str) -> str:
    """The document of a one-field mutation that asks for its payload's common fields."""
    assert SDL.mutation_type is not None
    input_type = SDL.mutation_type.fields[mutation].args["input"].type
    return f"mutation($input: {input_type}) {{ {mutation}(input: $input) {{ {PAYLOAD_FIELDS} }} }}"


async def test_nul_or_a_lone_surrogate_in_any_mutation_string_is_refused_naming_the_field(
    gql: GraphQLClient, world: World, stores: Stores
) -> None:
    """Text PostgreSQL cannot hold is a VALIDATION error; an id holding it cannot name
    anything, so it is NOT_FOUND (docs/architecture.md); either way nothing is written."""
    before = await store_snapshot.write_store(stores.write_engine)
    checked = []
    for (mutation, valid, path, scalar), bad in itertools.product(
        every_text_input(world), "\x00\ud800"
    ):
        spoiled = with_value(valid, path, lambda value: value[:2] + bad + value[2:])  # noqa: B023
        response = await post_json(
            gql.client, gql.url, {"query": payload_of(mutation), "variables": {"input": spoiled}}
        )
        payload = sound(response)["data"][mutation]
        expected = "NOT_FOUND" if scalar == "ID" and path != ("commandId",) else "VALIDATION"
        errors = [(e["code"], tuple(e["field"])) for e in payload["userErrors"]]
        assert errors == [(expected, path)], (mutation, path, bad, payload)
        assert (payload["version"], payload["consistencyToken"]) == (None, None)
        checked.append((mutation, path))
    assert ("cancelOrder", ("reason",)) in checked
    assert ("placeOrder", ("lines", "0", "productId")) in checked
    assert await store_snapshot.write_store(stores.write_engine) == before


ODD_BUT_FINE = [
    "\u202eright-to-left\u202c override",  # RTL override and pop
    "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627",  # Hebrew, Arabic
    "Zoe\u0308 cafe\u0301 a\u0300\u0301\u0302\u0303\u0304",  # combining marks
    "\U0001f469\u200d\U0001f469\u200d\U0001f467 \U0001f1eb\U0001f1f7 \U0001f600",  # ZWJ, flags
    "\u200b\u2060zero\u00a0width\ufeff",  # zero-width and no-break spaces
    "\U0001d518\U0001d52b\U0001d526\U0001d520",  # astral letters
    "\U0001f600" * 200,  # 200 characters, 800 bytes of UTF-8
]


async def test_odd_but_valid_unicode_is_stored_and_read_back_as_given(gql: GraphQLClient) -> None:
    document = """mutation($c: RegisterCustomerInput!, $p: CreateProductInput!) {
      registerCustomer(input: $c) { userErrors { code } customer { name } }
      createProduct(input: $p) { userErrors { code } product { name } } }"""
    for index, name in enumerate(ODD_BUT_FINE):
        variables = {
            "c": {"email": f"u{index}@example.com", "name": name},
            "p": {"sku": f"U-{index}", "name": name, "priceCents": 1, "stock": 1},
        }
        data = await gql.data(document, variables)
        assert data["registerCustomer"] == {"userErrors": [], "customer": {"name": name.strip()}}
        assert data["createProduct"] == {"userErrors": [], "product": {"name": name.strip()}}
    found = await gql.data(PRODUCTS, {"filter": {"search": "\u0645\u0631\u062d\u0628\u0627"}})
    assert [edge["node"]["sku"] for edge in connection_of(found)["edges"]] == ["U-1"]


async def test_dates_and_times_out_of_range_are_graphql_errors(gql: GraphQLClient) -> None:
    times = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-02-30T00:00:00Z",
             "yesterday", "", "\x00", "\ud800", "2026-01-01T00:00:00+25:00"]  # fmt: skip
    days = ["2026-02-30", "+12026-01-01", "0000-01-01", "2026-1-1x", "", "\ud800"]
    asked = [(ORDERS, {"filter": {"placedFrom": t}}, "DateTime") for t in times] + [
        (SALES_REPORT, {"from": d, "to": "2026-01-01"}, "Date") for d in days
    ]
    for document, variables, scalar in asked:
        response = await post_json(gql.client, gql.url, {"query": document, "variables": variables})
        body = sound(response)
        assert body["data"] is None, body
        assert scalar in body["errors"][0]["message"], body
