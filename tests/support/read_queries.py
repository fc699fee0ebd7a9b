"""Documents and functions that tests of the read side share."""

from __future__ import annotations

from typing import Any

from devtools.graphql_client import PAYLOAD_FIELDS, GraphQLClient

ORDER_FIELDS = """id status customer { id name email }
  lines { productId sku productName quantity unitPriceCents lineTotalCents }
  itemCount totalCents placedAt updatedAt cancelReason version"""
CUSTOMER_FIELDS = "id email name registeredAt orderCount totalSpentCents lastOrderAt version"
PRODUCT_FIELDS = "id sku name priceCents stock unitsSold revenueCents version"
DAY_FIELDS = "date ordersPlaced ordersCancelled itemsSold revenueCents"

PAGE = "pageInfo { hasNextPage endCursor } totalCount"

ORDER = f"""query($id: ID!, $token: String) {{
  order(id: $id, consistentWith: $token) {{ {ORDER_FIELDS} }} }}"""
CUSTOMER = f"""query($id: ID!, $token: String) {{
  customer(id: $id, consistentWith: $token) {{ {CUSTOMER_FIELDS} }} }}"""
PRODUCT = f"""query($id: ID!, $token: String) {{
  product(id: $id, consistentWith: $token) {{ {PRODUCT_FIELDS} }} }}"""
ORDERS = f"""query($filter: OrderFilter, $first: Int, $after: String, $token: String) {{
  orders(filter: $filter, first: $first, after: $after, consistentWith: $token) {{
    edges {{ cursor node {{ {ORDER_FIELDS} }} }} {PAGE} }} }}"""
CUSTOMERS = f"""query($first: Int, $after: String, $orderBy: CustomerOrderBy, $token: String) {{
  customers(first: $first, after: $after, orderBy: $orderBy, consistentWith: $token) {{
    edges {{ cursor node {{ {CUSTOMER_FIELDS} }} }} {PAGE} }} }}"""
PRODUCTS = f"""query($filter: ProductFilter, $first: Int, $after: String, $orderBy: ProductOrderBy,
  $token: String) {{
  products(filter: $filter, first: $first, after: $after, orderBy: $orderBy,
    consistentWith: $token) {{ edges {{ cursor node {{ {PRODUCT_FIELDS} }} }} {PAGE} }} }}"""
CUSTOMER_ORDERS = f"""query($id: ID!, $first: Int, $after: String, $token: String) {{
  customer(id: $id, consistentWith: $token) {{
    orders(first: $first, after: $after) {{ edges {{ cursor node {{ {ORDER_FIELDS} }} }} {PAGE} }}
  }} }}"""
SALES_REPORT = f"""query($from: Date!, $to: Date!, $token: String) {{
  salesReport(from: $from, to: $to, consistentWith: $token) {{ {DAY_FIELDS} }} }}"""
PROJECTIONS = """{ projections { name state lagEvents lagSeconds eventsApplied deadLetters
  lastAppliedAt } }"""


REGISTER_READ_BACK = f"""mutation($input: RegisterCustomerInput!) {{
  registerCustomer(input: $input) {{ {PAYLOAD_FIELDS} customerId customer {{ id }} }} }}"""
CREATE_READ_BACK = f"""mutation($input: CreateProductInput!) {{
  createProduct(input: $input) {{ {PAYLOAD_FIELDS} productId product {{ id }} }} }}"""


async def shown_customer(
    gql: GraphQLClient, email: str = "ada@example.com", name: str = "Ada"
) -> str:
    """Register a customer; its id, once the customer reads back (the payload waits for it)."""
    payload = await gql.ok(REGISTER_READ_BACK, email=email, name=name)
    assert payload["customer"] is not None, "the customer was not projected in time"
    return str(payload["customerId"])


async def shown_product(
    gql: GraphQLClient,
    sku: str = "SKU-1",
    name: str = "Widget",
    price_cents: int = 250,
    stock: int = 10,
) -> str:
    """Create a product; its id, once the product reads back (the payload waits for it)."""
    payload = await gql.ok(
        CREATE_READ_BACK, sku=sku, name=name, priceCents=price_cents, stock=stock
    )
    assert payload["product"] is not None, "the product was not projected in time"
    return str(payload["productId"])


# Each field waits on the projections it reads: together, on all of them.
SETTLED = """query($token: String) {
  order(id: "-", consistentWith: $token) { id }
  customer(id: "-", consistentWith: $token) { id }
  product(id: "-", consistentWith: $token) { id }
  salesReport(from: "2024-01-01", to: "2024-01-01", consistentWith: $token) { date } }"""


async def settle(gql: GraphQLClient, *payloads: dict[str, Any]) -> None:
    """Wait until every projection has applied these mutations' events."""
    for payload in payloads:
        await gql.data(SETTLED, {"token": payload["consistencyToken"]})


def connection_of(data: dict[str, Any]) -> dict[str, Any]:
    """The one connection a query's data holds (top level, or a customer's orders)."""
    (value,) = data.values()
    result: dict[str, Any] = value.get("orders", value)
    return result


async def page_through(
    gql: GraphQLClient, document: str, first: int, after: str | None = None, **variables: Any
) -> list[dict[str, Any]]:
    """Every node of a connection (after `after`), following endCursor page by page; checks
    the shape of each page and that totalCount counts them all."""
    nodes: list[dict[str, Any]] = []
    skipped = after is not None
    while True:
        page = connection_of(
            await gql.data(document, {**variables, "first": first, "after": after})
        )
        edges = page["edges"]
        assert len(edges) <= first
        nodes.extend(edge["node"] for edge in edges)
        info = page["pageInfo"]
        assert info["endCursor"] == (edges[-1]["cursor"] if edges else None)
        if not info["hasNextPage"]:
            assert skipped or page["totalCount"] == len(nodes)
            return nodes
        assert len(edges) == first
        after = info["endCursor"]


async def error_of(gql: GraphQLClient, document: str, **variables: Any) -> dict[str, Any]:
    """The one GraphQL error a request answers with."""
    body = await gql.execute(document, variables)
    (error,) = body["errors"]
    result: dict[str, Any] = error
    return result
