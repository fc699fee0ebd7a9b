"""The playground's example operations: one tab per field of the public contract.

Ids in the variables are placeholders: run RegisterCustomer, CreateProduct and PlaceOrder
first and paste the ids they return.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Example:
    """One GraphiQL tab: a named operation and its variables."""

    document: str
    variables: dict[str, Any] = field(default_factory=dict)


CUSTOMER_ID = "<customerId from RegisterCustomer>"
PRODUCT_ID = "<productId from CreateProduct>"
ORDER_ID = "<orderId from PlaceOrder>"
TOKEN = "<consistencyToken from any mutation>"


def _order_fields(indent: int) -> str:
    pad = "\n" + " " * indent
    return pad + pad.join(
        (
            "id status version itemCount totalCents placedAt updatedAt cancelReason",
            "customer { id name email }",
            "lines { productId sku productName quantity unitPriceCents lineTotalCents }",
        )
    )


_PRODUCT_FIELDS = "id sku name priceCents stock unitsSold revenueCents version"

_PAYLOAD = "userErrors { code message field } version consistencyToken"

_STATUS_FIELDS = "name state lagEvents lagSeconds eventsApplied deadLetters lastAppliedAt"

_WELCOME = (
    """\
# The cqrs-shop playground.
#
# Each tab holds one operation of the public API, named after it. Mutations go
# through the command bus to the write store; queries read the projections;
# subscriptions (the "Order…" and "Projection…" tabs) push updates over WebSocket.
#
# A first walk: RegisterCustomer, CreateProduct, PlaceOrder (paste the ids they
# return into the variables below each), then run OrderUpdated and PayOrder in
# another tab and watch the subscription's result change.
#
# Run: Ctrl-Enter or the play button. Complete: Ctrl-Space.
"""
    + f"query Welcome {{\n  projections {{ {_STATUS_FIELDS} }}\n}}\n"
)


EXAMPLES: tuple[Example, ...] = (
    Example(_WELCOME),
    # Mutations: the command side.
    Example(
        f"""mutation RegisterCustomer($input: RegisterCustomerInput!) {{
  registerCustomer(input: $input) {{
    {_PAYLOAD}
    customerId
    customer {{ id email name registeredAt orderCount totalSpentCents }}
  }}
}}""",
        {"input": {"email": "ada@example.com", "name": "Ada Lovelace"}},
    ),
    Example(
        f"""mutation CreateProduct($input: CreateProductInput!) {{
  createProduct(input: $input) {{
    {_PAYLOAD}
    productId
    product {{ {_PRODUCT_FIELDS} }}
  }}
}}""",
        {"input": {"sku": "TEA-001", "name": "Green tea", "priceCents": 450, "stock": 100}},
    ),
    Example(
        f"""mutation ChangeProductPrice($input: ChangeProductPriceInput!) {{
  changeProductPrice(input: $input) {{
    {_PAYLOAD}
    product {{ {_PRODUCT_FIELDS} }}
  }}
}}""",
        {"input": {"productId": PRODUCT_ID, "priceCents": 500}},
    ),
    Example(
        f"""mutation RestockProduct($input: RestockProductInput!) {{
  restockProduct(input: $input) {{
    {_PAYLOAD}
    product {{ {_PRODUCT_FIELDS} }}
  }}
}}""",
        {"input": {"productId": PRODUCT_ID, "quantity": 25}},
    ),
    Example(
        f"""mutation PlaceOrder($input: PlaceOrderInput!) {{
  placeOrder(input: $input) {{
    {_PAYLOAD}
    orderId
    order {{{_order_fields(6)}
    }}
  }}
}}""",
        {
            "input": {
                "commandId": "place-order-1",
                "customerId": CUSTOMER_ID,
                "lines": [{"productId": PRODUCT_ID, "quantity": 2}],
            }
        },
    ),
    Example(
        f"""mutation PayOrder($input: PayOrderInput!) {{
  payOrder(input: $input) {{
    {_PAYLOAD}
    order {{ id status version updatedAt }}
  }}
}}""",
        {"input": {"orderId": ORDER_ID}},
    ),
    Example(
        f"""mutation ShipOrder($input: ShipOrderInput!) {{
  shipOrder(input: $input) {{
    {_PAYLOAD}
    order {{ id status version updatedAt }}
  }}
}}""",
        {"input": {"orderId": ORDER_ID}},
    ),
    Example(
        f"""mutation CancelOrder($input: CancelOrderInput!) {{
  cancelOrder(input: $input) {{
    {_PAYLOAD}
    order {{ id status cancelReason version updatedAt }}
  }}
}}""",
        {"input": {"orderId": ORDER_ID, "reason": "changed my mind"}},
    ),
    # Queries: the read side, with read-your-writes through consistentWith.
    Example(
        f"""query Order($id: ID!, $consistentWith: String) {{
  order(id: $id, consistentWith: $consistentWith) {{{_order_fields(4)}
  }}
}}""",
        {"id": ORDER_ID, "consistentWith": None},
    ),
    Example(
        """query Orders($filter: OrderFilter, $first: Int, $after: String) {
  orders(filter: $filter, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id status totalCents placedAt customer { name } } }
  }
}""",
        {"filter": {"status": ["PLACED", "PAID"]}, "first": 20, "after": None},
    ),
    Example(
        """query Customer($id: ID!) {
  customer(id: $id) {
    id email name registeredAt orderCount totalSpentCents lastOrderAt version
    orders(first: 5) {
      totalCount
      edges { node { id status totalCents placedAt } }
    }
  }
}""",
        {"id": CUSTOMER_ID},
    ),
    Example(
        """query Customers($orderBy: CustomerOrderBy, $first: Int) {
  customers(orderBy: $orderBy, first: $first) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { id name email orderCount totalSpentCents lastOrderAt } }
  }
}""",
        {"orderBy": "TOTAL_SPENT_DESC", "first": 10},
    ),
    Example(
        f"""query Product($id: ID!) {{
  product(id: $id) {{ {_PRODUCT_FIELDS} }}
}}""",
        {"id": PRODUCT_ID},
    ),
    Example(
        f"""query Products($filter: ProductFilter, $orderBy: ProductOrderBy, $first: Int) {{
  products(filter: $filter, orderBy: $orderBy, first: $first) {{
    totalCount
    pageInfo {{ hasNextPage endCursor }}
    edges {{ node {{ {_PRODUCT_FIELDS} }} }}
  }}
}}""",
        {"filter": {"search": "tea", "inStock": True}, "orderBy": "UNITS_SOLD_DESC", "first": 10},
    ),
    Example(
        """query SalesReport($from: Date!, $to: Date!) {
  salesReport(from: $from, to: $to) {
    date ordersPlaced ordersCancelled itemsSold revenueCents
  }
}""",
        {"from": "2026-11-01", "to": "2026-11-30"},
    ),
    Example(
        f"""query Projections {{
  projections {{ {_STATUS_FIELDS} }}
}}"""
    ),
    # Subscriptions: pushed over the WebSocket at /graphql.
    Example(
        """subscription ProjectionsCaughtUp($token: String!, $timeoutMs: Int) {
  projectionsCaughtUp(token: $token, timeoutMs: $timeoutMs) { caughtUp projections waitedMs }
}""",
        {"token": TOKEN, "timeoutMs": 5000},
    ),
    Example(
        """subscription OrderUpdated($id: ID!) {
  orderUpdated(id: $id) { id status version totalCents updatedAt cancelReason }
}""",
        {"id": ORDER_ID},
    ),
    Example(
        """subscription OrdersChanged($customerId: ID) {
  ordersChanged(customerId: $customerId) { id status version totalCents customer { name } }
}""",
        {"customerId": None},
    ),
    Example(
        f"""subscription ProjectionStatus($intervalMs: Int) {{
  projectionStatus(intervalMs: $intervalMs) {{ {_STATUS_FIELDS} }}
}}""",
        {"intervalMs": 1000},
    ),
)
