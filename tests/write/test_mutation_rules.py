"""Every rule a mutation can break: its code and field path, and nothing written at all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from app.runtime.bootstrap import Stores
from devtools import store_snapshot
from devtools.graphql_client import (
    CANCEL_ORDER,
    CHANGE_PRODUCT_PRICE,
    CREATE_PRODUCT,
    PAY_ORDER,
    PLACE_ORDER,
    REGISTER_CUSTOMER,
    RESTOCK_PRODUCT,
    SHIP_ORDER,
    GraphQLClient,
)

UNKNOWN = "7d0c1f0e-1d9e-4e59-9d07-6a1a5a0b0c0d"


@dataclass(frozen=True)
class World:
    """What each case starts from: a customer, two products, a placed and a shipped order."""

    customer: str
    product: str  # stock 5, price 100
    other: str  # stock 2
    placed: str
    shipped: str


def line(product: str, quantity: int = 1) -> dict[str, Any]:
    return {"productId": product, "quantity": quantity}


Case = tuple[str, Callable[[World], dict[str, Any]], str, list[str] | None]

CASES: dict[str, Case] = {
    "email without @": (REGISTER_CUSTOMER, lambda w: {"email": "ada.example.com", "name": "A"},
                        "VALIDATION", ["email"]),
    "email with spaces": (REGISTER_CUSTOMER, lambda w: {"email": "a da@x.com", "name": "A"},
                          "VALIDATION", ["email"]),
    "blank name": (REGISTER_CUSTOMER, lambda w: {"email": "n@example.com", "name": "   "},
                   "VALIDATION", ["name"]),
    "name of 201 characters": (REGISTER_CUSTOMER,
                               lambda w: {"email": "n@example.com", "name": "x" * 201},
                               "VALIDATION", ["name"]),
    "name with a NUL byte": (REGISTER_CUSTOMER,
                             lambda w: {"email": "n@example.com", "name": "a\x00"},
                             "VALIDATION", ["name"]),
    "email taken, other case": (REGISTER_CUSTOMER,
                                lambda w: {"email": "ADA@example.com", "name": "Ada II"},
                                "ALREADY_EXISTS", ["email"]),
    "sku with a space": (CREATE_PRODUCT,
                         lambda w: {"sku": "A B", "name": "N", "priceCents": 1, "stock": 1},
                         "VALIDATION", ["sku"]),
    "sku of 65 characters": (CREATE_PRODUCT,
                             lambda w: {"sku": "A" * 65, "name": "N", "priceCents": 1, "stock": 1},
                             "VALIDATION", ["sku"]),
    "sku taken": (CREATE_PRODUCT,
                  lambda w: {"sku": "SKU-1", "name": "N", "priceCents": 1, "stock": 1},
                  "ALREADY_EXISTS", ["sku"]),
    "negative price": (CREATE_PRODUCT,
                       lambda w: {"sku": "NEW", "name": "N", "priceCents": -1, "stock": 1},
                       "VALIDATION", ["priceCents"]),
    "price over 10^12": (CREATE_PRODUCT,
                         lambda w: {"sku": "NEW", "name": "N", "priceCents": 10**12 + 1,
                                    "stock": 1},
                         "VALIDATION", ["priceCents"]),
    "stock over 10^9": (CREATE_PRODUCT,
                        lambda w: {"sku": "NEW", "name": "N", "priceCents": 1, "stock": 10**9 + 1},
                        "VALIDATION", ["stock"]),
    "price change of an unknown product": (CHANGE_PRODUCT_PRICE,
                                           lambda w: {"productId": UNKNOWN, "priceCents": 1},
                                           "NOT_FOUND", ["productId"]),
    "price change of a malformed id": (CHANGE_PRODUCT_PRICE,
                                       lambda w: {"productId": "no-such", "priceCents": 1},
                                       "NOT_FOUND", ["productId"]),
    "price change at a stale version": (CHANGE_PRODUCT_PRICE,
                                        lambda w: {"productId": w.product, "priceCents": 1,
                                                   "expectedVersion": 7},
                                        "VERSION_CONFLICT", ["expectedVersion"]),
    "restock of zero": (RESTOCK_PRODUCT, lambda w: {"productId": w.product, "quantity": 0},
                        "VALIDATION", ["quantity"]),
    "restock over 10^6": (RESTOCK_PRODUCT,
                          lambda w: {"productId": w.product, "quantity": 10**6 + 1},
                          "VALIDATION", ["quantity"]),
    "order without lines": (PLACE_ORDER, lambda w: {"customerId": w.customer, "lines": []},
                            "VALIDATION", ["lines"]),
    "order of 101 lines": (PLACE_ORDER,
                           lambda w: {"customerId": w.customer,
                                      "lines": [line(f"{i:08d}-0000-4000-8000-000000000000")
                                                for i in range(101)]},
                           "VALIDATION", ["lines"]),
    "line quantity 0": (PLACE_ORDER,
                        lambda w: {"customerId": w.customer,
                                   "lines": [line(w.other), line(w.product, 0)]},
                        "VALIDATION", ["lines", "1", "quantity"]),
    "line quantity 10001": (PLACE_ORDER,
                            lambda w: {"customerId": w.customer,
                                       "lines": [line(w.product, 10_001)]},
                            "VALIDATION", ["lines", "0", "quantity"]),
    "product in two lines": (PLACE_ORDER,
                             lambda w: {"customerId": w.customer,
                                        "lines": [line(w.product), line(w.product)]},
                             "VALIDATION", ["lines", "1", "productId"]),
    "unknown customer": (PLACE_ORDER, lambda w: {"customerId": UNKNOWN, "lines": [line(w.product)]},
                         "NOT_FOUND", ["customerId"]),
    "unknown product in line 1": (PLACE_ORDER,
                                  lambda w: {"customerId": w.customer,
                                             "lines": [line(w.product), line(UNKNOWN)]},
                                  "NOT_FOUND", ["lines", "1", "productId"]),
    "more than the stock, other line fine": (PLACE_ORDER,
                                             lambda w: {"customerId": w.customer,
                                                        "lines": [line(w.product, 1),
                                                                  line(w.other, 3)]},
                                             "INSUFFICIENT_STOCK", ["lines", "1", "quantity"]),
    "pay an unknown order": (PAY_ORDER, lambda w: {"orderId": UNKNOWN}, "NOT_FOUND", ["orderId"]),
    "pay at a stale version": (PAY_ORDER, lambda w: {"orderId": w.placed, "expectedVersion": 5},
                               "VERSION_CONFLICT", ["expectedVersion"]),
    "ship an unpaid order": (SHIP_ORDER, lambda w: {"orderId": w.placed},
                             "INVALID_STATE", ["orderId"]),
    "pay a shipped order": (PAY_ORDER, lambda w: {"orderId": w.shipped},
                            "INVALID_STATE", ["orderId"]),
    "cancel a shipped order": (CANCEL_ORDER, lambda w: {"orderId": w.shipped},
                               "INVALID_STATE", ["orderId"]),
    "cancel with a reason of 501 characters": (CANCEL_ORDER,
                                               lambda w: {"orderId": w.placed, "reason": "r" * 501},
                                               "VALIDATION", ["reason"]),
    "commandId of 129 characters": (RESTOCK_PRODUCT,
                                    lambda w: {"productId": w.product, "quantity": 1,
                                               "commandId": "c" * 129},
                                    "VALIDATION", ["commandId"]),
}  # fmt: skip


@pytest.fixture
async def world(gql: GraphQLClient) -> World:
    customer = await gql.customer(email="ada@example.com")
    product = await gql.product(sku="SKU-1", price_cents=100, stock=5)
    other = await gql.product(sku="SKU-2", stock=2)
    placed = (await gql.order(customer, (product, 1)))["orderId"]
    shipped = (await gql.order(customer, (product, 1)))["orderId"]
    await gql.ok(PAY_ORDER, orderId=shipped)
    await gql.ok(SHIP_ORDER, orderId=shipped)
    return World(customer, product, other, placed, shipped)


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
async def test_a_broken_rule_is_reported_and_nothing_is_written(
    case: str, gql: GraphQLClient, world: World, stores: Stores
) -> None:
    document, make_input, code, field = CASES[case]
    before = await store_snapshot.write_store(stores.write_engine)

    payload = await gql.mutate(document, **make_input(world))

    assert [(e["code"], e["field"]) for e in payload["userErrors"]][:1] == [(code, field)]
    assert all(e["message"] for e in payload["userErrors"])
    assert (payload["version"], payload["consistencyToken"]) == (None, None)
    assert [value for key, value in payload.items() if key.endswith("Id")] == [None]
    assert await store_snapshot.write_store(stores.write_engine) == before


async def test_every_broken_rule_of_one_input_is_reported_at_once(gql: GraphQLClient) -> None:
    payload = await gql.mutate(REGISTER_CUSTOMER, email="nope", name=" ")
    assert {(e["code"], tuple(e["field"])) for e in payload["userErrors"]} == {
        ("VALIDATION", ("email",)),
        ("VALIDATION", ("name",)),
    }


async def test_a_long_beyond_2_to_the_53_is_a_graphql_error_and_writes_nothing(
    gql: GraphQLClient, stores: Stores
) -> None:
    before = await store_snapshot.write_store(stores.write_engine)
    body = await gql.execute(
        CREATE_PRODUCT,
        {"input": {"sku": "BIG", "name": "Big", "priceCents": 2**53, "stock": 1}},
    )
    assert body.get("data") is None
    assert "Long must be within" in body["errors"][0]["message"]
    assert await store_snapshot.write_store(stores.write_engine) == before
