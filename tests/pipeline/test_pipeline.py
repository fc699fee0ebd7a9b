"""Events travel from the outbox through Redis Streams into every projection."""

from __future__ import annotations

from sqlalchemy import text

from app.runtime.bootstrap import Api
from devtools.graphql_client import CANCEL_ORDER, PAY_ORDER, GraphQLClient
from devtools.read_model_check import read_models
from tests.support.pipeline_waits import caught_up


async def test_a_mutation_reaches_every_projection(gql: GraphQLClient, process: Api) -> None:
    customer = await gql.customer(email="p@example.com", name="Pat")
    product = await gql.product(sku="P1", name="Pen", price_cents=150, stock=10)
    order = await gql.order(customer, (product, 4))
    await caught_up(process, order["consistencyToken"])
    paid = await gql.ok(PAY_ORDER, orderId=order["orderId"])
    await caught_up(process, paid["consistencyToken"])

    tables = await read_models(process.stores.read_engine)
    (view,) = tables["order_view"]
    assert (view[1], view[2], view[4], view[6], view[7]) == (
        view[1], "Pat", "PAID", 4, 600,
    )  # fmt: skip
    (summary,) = tables["customer_summary"]
    assert summary[1:3] == ("p@example.com", "Pat")
    assert summary[4:6] == (1, 600)
    (catalogue,) = tables["product_catalogue"]
    assert catalogue[1:8] == ("P1", "Pen", 150, 6, 4, 600, 1)
    (day,) = tables["daily_sales"]
    assert day[1:] == (1, 0, 4, 600)


async def test_a_cancellation_is_projected(gql: GraphQLClient, process: Api) -> None:
    customer = await gql.customer()
    product = await gql.product(stock=5)
    order = await gql.order(customer, (product, 5))
    cancelled = await gql.ok(CANCEL_ORDER, orderId=order["orderId"], reason="late")
    await caught_up(process, cancelled["consistencyToken"])
    async with process.stores.read_engine.connect() as connection:
        status = await connection.scalar(text("SELECT status FROM order_view"))
        stock = await connection.scalar(text("SELECT stock FROM product_catalogue"))
        sales = (await connection.execute(text("SELECT * FROM daily_sales"))).one()
    assert (status, stock) == ("CANCELLED", 5)
    assert tuple(sales)[1:] == (1, 1, 0, 0)
