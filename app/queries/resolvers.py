"""The read side's Query fields: arguments -> (wait for consistentWith) -> one read -> types."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.types import Info

from app.graphql.context import Context, Services
from app.pipeline.status import projection_statuses
from app.projections.registry import PROJECTIONS
from app.queries import access
from app.queries.connections import Connection, paged
from app.queries.inputs import CustomerOrderBy, OrderFilter, ProductFilter, ProductOrderBy
from app.queries.listings import (
    CUSTOMER_ORDERINGS,
    PRODUCT_ORDERINGS,
    OrderCriteria,
    customers_listing,
    orders_listing,
    products_listing,
)
from app.queries.read_your_writes import (
    CUSTOMER_READS,
    ORDER_READS,
    PRODUCT_READS,
    SALES_READS,
    visible_order,
    wait_for_token,
)
from app.queries.rows import read_customer, read_order, read_product
from app.queries.sales import read_sales_report
from app.queries.types import Customer, DailySales, Order, Product, ProjectionStatus

ConsistentWith = Annotated[
    str | None,
    strawberry.argument(
        description="A consistencyToken from a mutation: first wait (bounded) until the "
        "projections this field reads have applied its events."
    ),
]
First = Annotated[int | None, strawberry.argument(description="Page size, 1 to 100.")]
After = Annotated[str | None, strawberry.argument(description="The endCursor of the page before.")]


def _engine(info: Info[Context, None]) -> AsyncEngine:
    return info.context.services.query_engine


@strawberry.type
class ReadModelQuery:
    @strawberry.field(description="One order, or null if there is none with this id.")
    async def order(
        self, info: Info[Context, None], id: strawberry.ID, consistent_with: ConsistentWith = None
    ) -> Order | None:
        access.caller(info)
        await wait_for_token(info, consistent_with, ORDER_READS)
        row = await read_order(_engine(info), id)
        return visible_order(info, row)

    @strawberry.field(description="Orders matching the filter, newest first.")
    async def orders(
        self,
        info: Info[Context, None],
        filter: OrderFilter | None = None,
        first: First = 20,
        after: After = None,
        consistent_with: ConsistentWith = None,
    ) -> Connection[Order]:
        criteria = filter.criteria() if filter else OrderCriteria()
        criteria = replace(criteria, customer_id=access.orders_of(info, criteria.customer_id))
        await wait_for_token(info, consistent_with, ORDER_READS)
        listing = orders_listing(criteria)
        return await paged(_engine(info), listing, first, after, Order.from_row)

    @strawberry.field(description="One customer, or null if there is none with this id.")
    async def customer(
        self, info: Info[Context, None], id: strawberry.ID, consistent_with: ConsistentWith = None
    ) -> Customer | None:
        if not access.may_see(info, id):
            return None  # someone else's profile reads as no such customer
        await wait_for_token(info, consistent_with, CUSTOMER_READS)
        row = await read_customer(_engine(info), id)
        return None if row is None else Customer.from_row(row)

    @strawberry.field(description="Every customer, in the order asked for.")
    async def customers(
        self,
        info: Info[Context, None],
        first: First = 20,
        after: After = None,
        order_by: CustomerOrderBy | None = CustomerOrderBy.NEWEST,
        consistent_with: ConsistentWith = None,
    ) -> Connection[Customer]:
        access.admin(info, "listing customers")
        await wait_for_token(info, consistent_with, CUSTOMER_READS)
        sort = (order_by or CustomerOrderBy.NEWEST).value
        listing = customers_listing(CUSTOMER_ORDERINGS[sort])
        return await paged(_engine(info), listing, first, after, Customer.from_row)

    @strawberry.field(description="One product, or null if there is none with this id.")
    async def product(
        self, info: Info[Context, None], id: strawberry.ID, consistent_with: ConsistentWith = None
    ) -> Product | None:
        await wait_for_token(info, consistent_with, PRODUCT_READS)
        row = await read_product(_engine(info), id)
        return None if row is None else Product.from_row(row)

    @strawberry.field(description="The catalogue, filtered and in the order asked for.")
    async def products(
        self,
        info: Info[Context, None],
        filter: ProductFilter | None = None,
        first: First = 20,
        after: After = None,
        order_by: ProductOrderBy | None = ProductOrderBy.NAME,
        consistent_with: ConsistentWith = None,
    ) -> Connection[Product]:
        await wait_for_token(info, consistent_with, PRODUCT_READS)
        sort = (order_by or ProductOrderBy.NAME).value
        search, in_stock = (filter.search_text(), filter.stock_wanted()) if filter else (None, None)
        listing = products_listing(PRODUCT_ORDERINGS[sort], search, in_stock)
        return await paged(_engine(info), listing, first, after, Product.from_row)

    @strawberry.field(
        description="Every day in [from, to] inclusive, zeros where nothing happened; "
        "at most 366 days."
    )
    async def sales_report(
        self,
        info: Info[Context, None],
        from_: Annotated[date, strawberry.argument(name="from")],
        to: date,
        consistent_with: ConsistentWith = None,
    ) -> list[DailySales]:
        access.admin(info, "salesReport")
        await wait_for_token(info, consistent_with, SALES_READS)
        rows = await read_sales_report(_engine(info), from_, to)
        return [DailySales.from_row(row) for row in rows]

    @strawberry.field(description="How far each projection is.")
    async def projections(self, info: Info[Context, None]) -> list[ProjectionStatus]:
        access.admin(info, "projections")
        return await projection_status_list(info.context.services)


async def projection_status_list(services: Services) -> list[ProjectionStatus]:
    """The status of every projection (the `projections` field, and its subscription)."""
    settings = services.settings
    statuses = await projection_statuses(
        services.query_engine,
        services.redis,
        settings.redis_prefix,
        settings.stream_partitions,
        PROJECTIONS,
    )
    return [ProjectionStatus.of(status) for status in statuses]
