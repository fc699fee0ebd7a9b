"""The read side's single-item fields, aggregates, the sales report and projection status,
over HTTP, against what mutations wrote. Reads pass the last mutation's token: no sleeping."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text

from app.runtime.bootstrap import Stores
from devtools.graphql_client import CANCEL_ORDER, PAY_ORDER, PAYLOAD_FIELDS, GraphQLClient
from tests.support.read_queries import (
    CUSTOMER,
    CUSTOMER_FIELDS,
    CUSTOMER_ORDERS,
    CUSTOMERS,
    ORDER,
    ORDER_FIELDS,
    ORDERS,
    PRODUCT,
    PRODUCT_FIELDS,
    PRODUCTS,
    PROJECTIONS,
    SALES_REPORT,
    error_of,
    settle,
    shown_customer,
    shown_product,
)


def _today() -> date:
    return datetime.now(UTC).date()


async def test_an_order_reads_as_it_was_placed(gql: GraphQLClient) -> None:
    customer = await shown_customer(gql, email="ada@example.com", name="Ada")
    pen = await shown_product(gql, sku="PEN", name="Pen", price_cents=150, stock=10)
    ink = await shown_product(gql, sku="INK", name="Ink", price_cents=400, stock=10)
    placed = await gql.order(customer, (ink, 1), (pen, 3))

    order = (await gql.data(ORDER, {"id": placed["orderId"], "token": placed["consistencyToken"]}))[
        "order"
    ]
    assert order["id"] == placed["orderId"]
    assert (order["status"], order["version"], order["cancelReason"]) == ("PLACED", 1, None)
    assert order["customer"] == {"id": customer, "name": "Ada", "email": "ada@example.com"}
    assert order["lines"] == [
        {"productId": ink, "sku": "INK", "productName": "Ink", "quantity": 1,
         "unitPriceCents": 400, "lineTotalCents": 400},
        {"productId": pen, "sku": "PEN", "productName": "Pen", "quantity": 3,
         "unitPriceCents": 150, "lineTotalCents": 450},
    ]  # fmt: skip
    assert (order["itemCount"], order["totalCents"]) == (4, 850)
    placed_at = datetime.fromisoformat(order["placedAt"])
    assert placed_at.utcoffset() is not None
    assert abs(placed_at - datetime.now(UTC)) < timedelta(minutes=1)


async def test_an_order_shows_its_latest_status_and_cancel_reason(gql: GraphQLClient) -> None:
    customer = await shown_customer(gql)
    product = await shown_product(gql, stock=5)
    placed = await gql.order(customer, (product, 2))
    await gql.ok(PAY_ORDER, orderId=placed["orderId"])
    cancelled = await gql.ok(CANCEL_ORDER, orderId=placed["orderId"], reason="changed my mind")

    order = (
        await gql.data(ORDER, {"id": placed["orderId"], "token": cancelled["consistencyToken"]})
    )["order"]
    assert (order["status"], order["version"]) == ("CANCELLED", 3)
    assert order["cancelReason"] == "changed my mind"
    assert order["updatedAt"] >= order["placedAt"]


async def test_unknown_and_malformed_ids_read_as_null(gql: GraphQLClient) -> None:
    for document in (ORDER, CUSTOMER, PRODUCT):
        for id_ in (str(uuid.uuid4()), "not-an-id", ""):
            body = await gql.execute(document, {"id": id_})
            assert "errors" not in body, body
            assert list(body["data"].values()) == [None]


async def test_a_customer_counts_only_orders_not_cancelled(gql: GraphQLClient) -> None:
    customer = await shown_customer(gql, email="bo@example.com", name="Bo")
    product = await shown_product(gql, price_cents=100, stock=50)
    first = await gql.order(customer, (product, 2))
    second = await gql.order(customer, (product, 5))
    cancelled = await gql.ok(CANCEL_ORDER, orderId=first["orderId"])
    await settle(gql, second)
    token = cancelled["consistencyToken"]

    summary = (await gql.data(CUSTOMER, {"id": customer, "token": token}))["customer"]
    assert (summary["orderCount"], summary["totalSpentCents"]) == (1, 500)
    assert (summary["email"], summary["name"], summary["version"]) == ("bo@example.com", "Bo", 1)
    placed_second = (await gql.data(ORDER, {"id": second["orderId"]}))["order"]["placedAt"]
    assert summary["lastOrderAt"] == placed_second

    orders = (await gql.data(CUSTOMER_ORDERS, {"id": customer, "token": token}))["customer"]
    ids = [edge["node"]["id"] for edge in orders["orders"]["edges"]]
    assert ids == [second["orderId"], first["orderId"]]  # newest first, cancelled included
    assert orders["orders"]["totalCount"] == 2


async def test_a_new_customer_has_no_orders(gql: GraphQLClient) -> None:
    registered = await gql.ok(
        f"""mutation($input: RegisterCustomerInput!) {{
          registerCustomer(input: $input) {{ {PAYLOAD_FIELDS} customerId }} }}""",
        email="new@example.com",
        name="New",
    )
    variables = {"id": registered["customerId"], "token": registered["consistencyToken"]}
    summary = (await gql.data(CUSTOMER, variables))["customer"]
    assert (summary["orderCount"], summary["totalSpentCents"], summary["lastOrderAt"]) == (
        0, 0, None,
    )  # fmt: skip
    orders = (await gql.data(CUSTOMER_ORDERS, variables))["customer"]["orders"]
    assert orders == {
        "edges": [], "pageInfo": {"hasNextPage": False, "endCursor": None}, "totalCount": 0
    }  # fmt: skip


async def test_a_product_counts_sales_of_orders_not_cancelled(gql: GraphQLClient) -> None:
    customer = await shown_customer(gql)
    product = await shown_product(gql, sku="MUG", name="Mug", price_cents=300, stock=20)
    kept = await gql.order(customer, (product, 4))
    dropped = await gql.order(customer, (product, 6))
    cancelled = await gql.ok(CANCEL_ORDER, orderId=dropped["orderId"])
    await settle(gql, kept)

    mug = (await gql.data(PRODUCT, {"id": product, "token": cancelled["consistencyToken"]}))[
        "product"
    ]
    assert mug == {
        "id": product, "sku": "MUG", "name": "Mug", "priceCents": 300, "stock": 16,
        "unitsSold": 4, "revenueCents": 1200, "version": 1,
    }  # fmt: skip
    assert kept["orderId"] != dropped["orderId"]


async def test_the_sales_report_has_every_day_with_zeros(gql: GraphQLClient) -> None:
    customer = await shown_customer(gql)
    product = await shown_product(gql, price_cents=100, stock=20)
    await settle(gql, await gql.order(customer, (product, 2)))
    doomed = await gql.order(customer, (product, 3))
    cancelled = await gql.ok(CANCEL_ORDER, orderId=doomed["orderId"])
    today = _today()

    variables = {
        "from": (today - timedelta(days=2)).isoformat(),
        "to": (today + timedelta(days=1)).isoformat(),
        "token": cancelled["consistencyToken"],
    }
    report = (await gql.data(SALES_REPORT, variables))["salesReport"]
    zero = {"ordersPlaced": 0, "ordersCancelled": 0, "itemsSold": 0, "revenueCents": 0}
    assert report == [
        {"date": (today - timedelta(days=2)).isoformat(), **zero},
        {"date": (today - timedelta(days=1)).isoformat(), **zero},
        {"date": today.isoformat(), "ordersPlaced": 2, "ordersCancelled": 1, "itemsSold": 2,
         "revenueCents": 200},
        {"date": (today + timedelta(days=1)).isoformat(), **zero},
    ]  # fmt: skip


async def test_a_cancellation_changes_the_day_the_order_was_placed_on(
    gql: GraphQLClient, stores: Stores
) -> None:
    customer = await shown_customer(gql)
    product = await shown_product(gql, price_cents=100, stock=20)
    placed = await gql.order(customer, (product, 3))
    today = _today()
    counted = {"from": today.isoformat(), "to": today.isoformat()}
    await gql.data(SALES_REPORT, {**counted, "token": placed["consistencyToken"]})
    # As if the order had been placed three days ago: the write store's order and the day it
    # was counted on in the read store.
    async with stores.write_engine.begin() as connection:
        await connection.execute(
            text("UPDATE orders SET placed_at = placed_at - interval '3 days' WHERE id = :id"),
            {"id": placed["orderId"]},
        )
    async with stores.read_engine.begin() as connection:
        await connection.execute(text("UPDATE daily_sales SET day = day - 3"))
    cancelled = await gql.ok(CANCEL_ORDER, orderId=placed["orderId"])

    variables = {
        "from": (today - timedelta(days=3)).isoformat(),
        "to": today.isoformat(),
        "token": cancelled["consistencyToken"],
    }
    report = (await gql.data(SALES_REPORT, variables))["salesReport"]
    assert [(day["ordersPlaced"], day["ordersCancelled"], day["itemsSold"],
             day["revenueCents"]) for day in report] == [
        (1, 1, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0),
    ]  # fmt: skip


async def test_a_sales_report_range_must_be_ordered_and_at_most_366_days(
    gql: GraphQLClient,
) -> None:
    start = date(2024, 1, 1)  # a leap year: 366 days to 2024-12-31
    reversed_ = await error_of(gql, SALES_REPORT, **{"from": "2024-02-02", "to": "2024-02-01"})
    assert reversed_["extensions"]["code"] == "VALIDATION"
    assert "must not be after" in reversed_["message"]
    too_long = await error_of(gql, SALES_REPORT, **{"from": "2024-01-01", "to": "2025-01-01"})
    assert too_long["extensions"]["code"] == "VALIDATION"
    assert "366" in too_long["message"]

    whole_year = (await gql.data(SALES_REPORT, {"from": "2024-01-01", "to": "2024-12-31"}))[
        "salesReport"
    ]
    assert [day["date"] for day in whole_year] == [
        (start + timedelta(days=n)).isoformat() for n in range(366)
    ]
    one_day = await gql.data(SALES_REPORT, {"from": "2024-03-01", "to": "2024-03-01"})
    assert [day["date"] for day in one_day["salesReport"]] == ["2024-03-01"]


async def test_rows_not_yet_created_are_never_shown(gql: GraphQLClient, stores: Stores) -> None:
    # An order's events can reach these projections before the creation event: such rows
    # exist at version 0 with counters only.
    ghost_customer, ghost_product = uuid.uuid4(), uuid.uuid4()
    async with stores.read_engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO customer_summary (id, order_count, total_spent_cents, version) "
                 "VALUES (:id, 1, 500, 0)"),
            {"id": ghost_customer},
        )  # fmt: skip
        await connection.execute(
            text("INSERT INTO product_catalogue (id, stock, units_sold, revenue_cents, version) "
                 "VALUES (:id, -2, 2, 500, 0)"),
            {"id": ghost_product},
        )  # fmt: skip
    customer = await shown_customer(gql)
    product = await shown_product(gql)
    token = (await gql.order(customer, (product, 1)))["consistencyToken"]

    assert (await gql.data(CUSTOMER, {"id": str(ghost_customer)}))["customer"] is None
    assert (await gql.data(PRODUCT, {"id": str(ghost_product)}))["product"] is None
    for order_by in ("NEWEST", "TOTAL_SPENT_DESC", "NAME"):
        listed = (await gql.data(CUSTOMERS, {"orderBy": order_by, "token": token}))["customers"]
        assert [edge["node"]["id"] for edge in listed["edges"]] == [customer]
        assert listed["totalCount"] == 1
    for order_by in ("NAME", "PRICE_ASC", "PRICE_DESC", "UNITS_SOLD_DESC"):
        for filter_ in (None, {"inStock": False}, {"inStock": True}, {"search": ""}):
            listed = (
                await gql.data(PRODUCTS, {"orderBy": order_by, "filter": filter_, "token": token})
            )["products"]
            expected = [] if filter_ == {"inStock": False} else [product]
            assert [edge["node"]["id"] for edge in listed["edges"]] == expected
            assert listed["totalCount"] == len(expected)


async def test_projections_report_each_projection_caught_up(gql: GraphQLClient) -> None:
    customer = await shown_customer(gql)
    product = await shown_product(gql)
    placed = await gql.order(customer, (product, 1))
    await gql.data(SALES_REPORT, {"from": "2024-01-01", "to": "2024-01-01",
                                  "token": placed["consistencyToken"]})  # fmt: skip
    await gql.data(CUSTOMER, {"id": customer, "token": placed["consistencyToken"]})
    await gql.data(PRODUCT, {"id": product, "token": placed["consistencyToken"]})
    await gql.data(ORDER, {"id": placed["orderId"], "token": placed["consistencyToken"]})

    statuses = (await gql.data(PROJECTIONS))["projections"]
    assert [s["name"] for s in statuses] == [
        "order_view", "customer_summary", "product_catalogue", "daily_sales", "order_history",
    ]  # fmt: skip
    for status in statuses:
        assert status["state"] in ("LIVE", "CATCHING_UP")
        assert status["deadLetters"] == 0
        assert status["eventsApplied"] >= 1
        assert status["lastAppliedAt"] is not None
        assert isinstance(status["lagSeconds"], float)
        assert status["lagEvents"] >= 0


async def test_a_malformed_consistency_token_is_a_validation_error(gql: GraphQLClient) -> None:
    some_id = str(uuid.uuid4())
    documents = [
        (ORDER, {"id": some_id}), (CUSTOMER, {"id": some_id}), (PRODUCT, {"id": some_id}),
        (ORDERS, {}), (CUSTOMERS, {}), (PRODUCTS, {}),
        (SALES_REPORT, {"from": "2024-01-01", "to": "2024-01-02"}),
    ]  # fmt: skip
    for document, variables in documents:
        for token in ("garbage", "", "eyJmIjoxfQ"):
            error = await error_of(gql, document, **variables, token=token)
            assert error["extensions"]["code"] == "VALIDATION", error
            assert "consistentWith" in error["message"]


async def test_payloads_show_the_read_model_after_the_write(gql: GraphQLClient) -> None:
    customer = await gql.ok(
        f"""mutation($input: RegisterCustomerInput!) {{ registerCustomer(input: $input) {{
          {PAYLOAD_FIELDS} customerId customer {{ {CUSTOMER_FIELDS} }} }} }}""",
        email="cy@example.com",
        name="Cy",
    )
    assert customer["customer"]["id"] == customer["customerId"]
    assert customer["customer"]["email"] == "cy@example.com"
    product = await gql.ok(
        f"""mutation($input: CreateProductInput!) {{ createProduct(input: $input) {{
          {PAYLOAD_FIELDS} productId product {{ {PRODUCT_FIELDS} }} }} }}""",
        sku="HAT", name="Hat", priceCents=999, stock=3,
    )  # fmt: skip
    assert product["product"]["stock"] == 3
    order = await gql.ok(
        f"""mutation($input: PlaceOrderInput!) {{ placeOrder(input: $input) {{
          {PAYLOAD_FIELDS} orderId order {{ {ORDER_FIELDS} }} }} }}""",
        customerId=customer["customerId"],
        lines=[{"productId": product["productId"], "quantity": 2}],
    )
    assert (order["order"]["status"], order["order"]["totalCents"]) == ("PLACED", 1998)


async def test_a_refused_command_has_no_read_model(gql: GraphQLClient) -> None:
    refused = await gql.mutate(
        f"""mutation($input: PlaceOrderInput!) {{ placeOrder(input: $input) {{
          {PAYLOAD_FIELDS} orderId order {{ id }} }} }}""",
        customerId=str(uuid.uuid4()),
        lines=[{"productId": str(uuid.uuid4()), "quantity": 1}],
    )
    assert refused["userErrors"]
    assert (refused["order"], refused["orderId"], refused["consistencyToken"]) == (None,) * 3
