"""Read-your-writes for the read side: wait until a token's events are projected, then read.

A query field with `consistentWith` waits on the projections it reads, then reads whether or
not the wait timed out. A mutation payload's read-model field waits on its own command's
token and is null if the wait timed out (the contract's promise).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.types import Info

from app.events.consistency_token import AggregateVersion, MalformedTokenError, decode_token
from app.graphql.context import Context
from app.pipeline.catch_up import CaughtUp, WaitLimitReached
from app.projections.base import Projection
from app.projections.names import ProjectionName
from app.projections.registry import PROJECTIONS
from app.queries import access
from app.queries.errors import InvalidArgument, TooManyWaits
from app.queries.rows import read_customer, read_order, read_product
from app.queries.types import Customer, Order, Product
from app.security.principal import caller_identity

T = TypeVar("T")

# The projections each field reads. An order is order_view and its history order_history;
# Customer.orders reads both, so customer fields wait on them too (a registration's token
# does not concern them, so that costs nothing).
ORDER_READS = frozenset({ProjectionName.ORDER_VIEW, ProjectionName.ORDER_HISTORY})
CUSTOMER_READS = frozenset({ProjectionName.CUSTOMER_SUMMARY, *ORDER_READS})
PRODUCT_READS = frozenset({ProjectionName.PRODUCT_CATALOGUE})
SALES_READS = frozenset({ProjectionName.DAILY_SALES})


def token_versions(
    info: Info[Context, None], token: str, argument: str
) -> Sequence[AggregateVersion]:
    """The aggregate versions a consistency token names; a VALIDATION error, naming the
    argument, for a token this service did not issue to this caller.

    Garbage, a forged or altered token, one signed with another key and someone else's all get
    the same answer, at once: a refusal says nothing about the ids the token names.
    """
    return versions_in_token(info.context, token, argument)


def versions_in_token(context: Context, token: str, argument: str) -> Sequence[AggregateVersion]:
    """`token_versions` for a context (the compiled read path has no Info)."""
    key, caller = context.services.token_key, caller_identity(context.principal)
    try:
        return decode_token(token, key, caller)
    except MalformedTokenError as error:
        raise InvalidArgument(
            f"{argument} is not a consistency token issued by this service to this caller"
        ) from error


async def wait_for_token(
    info: Info[Context, None], token: str | None, reads: frozenset[ProjectionName]
) -> bool:
    """Wait (bounded by the consistency timeout) until the projections in `reads` concerned
    by the token have applied its events; True if they have or no token was given."""
    return await caught_up_with(info.context, token, reads)


async def caught_up_with(
    context: Context, token: str | None, reads: frozenset[ProjectionName]
) -> bool:
    """`wait_for_token` for a context (the compiled read path has no Info)."""
    if token is None:
        return True
    projections = [p for p in PROJECTIONS if p.name in reads]
    timeout_s = context.services.settings.consistency_timeout_ms / 1000
    versions = versions_in_token(context, token, "consistentWith")
    waited = await wait_in_context(context, versions, projections, timeout_s)
    return waited.caught_up


async def wait_until_applied(
    info: Info[Context, None],
    versions: Sequence[AggregateVersion],
    projections: Sequence[Projection],
    timeout_s: float,
) -> CaughtUp:
    """Wait (at most `timeout_s`) until the concerned `projections` have applied `versions`;
    RATE_LIMITED at once when this request (or WebSocket) or this process already waits on
    as many tokens as it may."""
    return await wait_in_context(info.context, versions, projections, timeout_s)


async def wait_in_context(
    context: Context,
    versions: Sequence[AggregateVersion],
    projections: Sequence[Projection],
    timeout_s: float,
) -> CaughtUp:
    """`wait_until_applied` for a context (the compiled read path has no Info)."""
    try:
        with context.waits.take():
            return await context.services.catch_up.wait(versions, projections, timeout_s)
    except WaitLimitReached as error:
        raise TooManyWaits(str(error)) from error


async def _after_write(
    info: Info[Context, None],
    token: str | None,
    reads: frozenset[ProjectionName],
    read: Callable[[AsyncEngine], Awaitable[RowMapping | None]],
    node: Callable[[RowMapping], T],
) -> T | None:
    if token is None or not await wait_for_token(info, token, reads):
        return None
    row = await read(info.context.services.query_engine)
    return None if row is None else node(row)


def visible_order(info: Info[Context, None], row: RowMapping | None) -> Order | None:
    """The order of a row, if the caller may see it: someone else's reads as not there."""
    if row is None or not access.may_see(info, row["customer_id"]):
        return None
    return Order.from_row(row)


async def customer_after_write(
    info: Info[Context, None], customer_id: str | None, token: str | None
) -> Customer | None:
    """A payload's customer: as projected once its command's events are applied."""
    if customer_id is None or not access.may_see(info, customer_id):
        return None
    return await _after_write(
        info, token, CUSTOMER_READS, lambda e: read_customer(e, customer_id), Customer.from_row
    )


async def product_after_write(
    info: Info[Context, None], product_id: str | None, token: str | None
) -> Product | None:
    """A payload's product: as projected once its command's events are applied."""
    return await _after_write(
        info, token, PRODUCT_READS, lambda e: read_product(e, product_id), Product.from_row
    )


async def order_after_write(
    info: Info[Context, None], order_id: str | None, token: str | None
) -> Order | None:
    """A payload's order: as projected once its command's events are applied."""
    row = await _after_write(info, token, ORDER_READS, lambda e: read_order(e, order_id), _row)
    return visible_order(info, row)


def _row(row: RowMapping) -> RowMapping:
    return row
