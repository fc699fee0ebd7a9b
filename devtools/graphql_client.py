"""A small GraphQL-over-HTTP client, and the contract's mutations as documents."""

from __future__ import annotations

from typing import Any

import httpx

PAYLOAD_FIELDS = "userErrors { code message field } version consistencyToken"

# The aggregate id each mutation's payload names.
ID_FIELDS = {
    "registerCustomer": "customerId",
    "createProduct": "productId",
    "changeProductPrice": "productId",
    "restockProduct": "productId",
    "placeOrder": "orderId",
    "payOrder": "orderId",
    "shipOrder": "orderId",
    "cancelOrder": "orderId",
}


def _mutation(name: str) -> str:
    input_type = name[0].upper() + name[1:] + "Input"
    selection = f"{PAYLOAD_FIELDS} {ID_FIELDS[name]}"
    return f"mutation($input: {input_type}!) {{ {name}(input: $input) {{ {selection} }} }}"


# Each mutation, by name, selecting its payload's fields and aggregate id.
MUTATIONS = {name: _mutation(name) for name in ID_FIELDS}
REGISTER_CUSTOMER = MUTATIONS["registerCustomer"]
CREATE_PRODUCT = MUTATIONS["createProduct"]
CHANGE_PRODUCT_PRICE = MUTATIONS["changeProductPrice"]
RESTOCK_PRODUCT = MUTATIONS["restockProduct"]
PLACE_ORDER = MUTATIONS["placeOrder"]
PAY_ORDER = MUTATIONS["payOrder"]
SHIP_ORDER = MUTATIONS["shipOrder"]
CANCEL_ORDER = MUTATIONS["cancelOrder"]


class GraphQLClient:
    """Posts operations to /graphql; `data` fails on any GraphQL error."""

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self.url = url
        self.client = client

    async def execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.client.post(self.url, json={"query": query, "variables": variables})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = await self.execute(query, variables)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    async def mutate(self, document: str, **input: Any) -> dict[str, Any]:
        """Run a one-field mutation with `input`; return its payload."""
        data = await self.data(document, {"input": input})
        (payload,) = data.values()
        result: dict[str, Any] = payload
        return result

    async def ok(self, document: str, **input: Any) -> dict[str, Any]:
        """Run a mutation that must be accepted."""
        payload = await self.mutate(document, **input)
        assert payload["userErrors"] == [], payload["userErrors"]
        return payload

    # Shortcuts for arranging a test.
    async def customer(self, email: str = "ada@example.com", name: str = "Ada") -> str:
        payload = await self.ok(REGISTER_CUSTOMER, email=email, name=name)
        return str(payload["customerId"])

    async def product(
        self, sku: str = "SKU-1", name: str = "Widget", price_cents: int = 250, stock: int = 10
    ) -> str:
        payload = await self.ok(
            CREATE_PRODUCT, sku=sku, name=name, priceCents=price_cents, stock=stock
        )
        return str(payload["productId"])

    async def order(self, customer_id: str, *lines: tuple[str, int]) -> dict[str, Any]:
        return await self.ok(
            PLACE_ORDER,
            customerId=customer_id,
            lines=[{"productId": p, "quantity": q} for p, q in lines],
        )
