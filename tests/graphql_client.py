"""A small GraphQL-over-HTTP client for tests, and the contract's mutations as documents."""

from __future__ import annotations

from typing import Any

import httpx

PAYLOAD_FIELDS = "userErrors { code message field } version consistencyToken"

REGISTER_CUSTOMER = f"""
mutation($input: RegisterCustomerInput!) {{
  registerCustomer(input: $input) {{ {PAYLOAD_FIELDS} customerId }}
}}"""
CREATE_PRODUCT = f"""
mutation($input: CreateProductInput!) {{
  createProduct(input: $input) {{ {PAYLOAD_FIELDS} productId }}
}}"""
CHANGE_PRODUCT_PRICE = f"""
mutation($input: ChangeProductPriceInput!) {{
  changeProductPrice(input: $input) {{ {PAYLOAD_FIELDS} productId }}
}}"""
RESTOCK_PRODUCT = f"""
mutation($input: RestockProductInput!) {{
  restockProduct(input: $input) {{ {PAYLOAD_FIELDS} productId }}
}}"""
PLACE_ORDER = f"""
mutation($input: PlaceOrderInput!) {{
  placeOrder(input: $input) {{ {PAYLOAD_FIELDS} orderId }}
}}"""
PAY_ORDER = f"""
mutation($input: PayOrderInput!) {{ payOrder(input: $input) {{ {PAYLOAD_FIELDS} orderId }} }}"""
SHIP_ORDER = f"""
mutation($input: ShipOrderInput!) {{ shipOrder(input: $input) {{ {PAYLOAD_FIELDS} orderId }} }}"""
CANCEL_ORDER = f"""
mutation($input: CancelOrderInput!) {{
  cancelOrder(input: $input) {{ {PAYLOAD_FIELDS} orderId }}
}}"""


class GraphQLClient:
    """Posts operations to /graphql; `data` fails the test on any GraphQL error."""

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
