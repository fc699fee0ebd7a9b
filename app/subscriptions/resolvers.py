"""The Subscription type: clients hear when projections catch up and when orders change.

Each subscription is an async generator that re-reads the read store when the change feed
rings. It yields only when its consumer takes the next value, so a slow client gets the newest
state rather than a growing queue; and a version is never emitted after a newer one. The
consumer of orderUpdated is a broadcast group (broadcast.py), which keeps that promise for
each of its sockets.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncGenerator, Sequence
from typing import Any
from uuid import UUID

import strawberry
from sqlalchemy import RowMapping, select
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.types import Info
from strawberry.types.nodes import SelectedField, Selection

from app.graphql.context import Context
from app.graphql.ids import parse_id
from app.pipeline.change_feed import Watch
from app.projections.change_keys import ChangeKey, KeyKind, customer_orders_key, order_key
from app.projections.names import ProjectionName
from app.projections.registry import PROJECTIONS
from app.projections.tables import APPLIED, order_view
from app.queries import access
from app.queries.errors import InvalidArgument
from app.queries.read_your_writes import token_versions, wait_until_applied
from app.queries.resolvers import projection_status_list
from app.queries.rows import read_order
from app.queries.types import Order, ProjectionStatus
from app.subscriptions.types import CaughtUp

MAX_TIMEOUT_MS = 60_000
MIN_INTERVAL_MS = 200
_ORDER_VIEW = (ProjectionName.ORDER_VIEW,)
_RESYNC_LIMIT = 100
_REMEMBERED = 10_000


def _selects(info: Info[Context, None], name: str) -> bool:
    """Whether the field's selection asks for `name` on its object (fragments included)."""

    def among(selections: Sequence[Selection]) -> bool:
        return any(
            s.name == name if isinstance(s, SelectedField) else among(s.selections)
            for s in selections
        )

    return any(among(field.selections) for field in info.selected_fields)


async def _history_version(engine: AsyncEngine, order_id: UUID) -> int:
    """The order's version order_history has applied (0: none)."""
    applied = APPLIED[ProjectionName.ORDER_HISTORY]
    async with engine.connect() as connection:
        version = await connection.scalar(
            select(applied.c.version).where(applied.c.aggregate_id == order_id)
        )
    return int(version or 0)


def _uuid_argument(raw: str | None, name: str) -> Any:
    if raw is None:
        return None
    parsed = parse_id(raw)
    if parsed is None:
        raise InvalidArgument(f"{name} is not a valid id")
    return parsed


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Emits once, when every projection concerned by the token's events has "
        "applied them (at once if that is already so) or when timeoutMs passes; then completes."
    )
    async def projections_caught_up(
        self, info: Info[Context, None], token: str, timeout_ms: int | None = 5000
    ) -> AsyncGenerator[CaughtUp, None]:
        access.caller(info)
        timeout_ms = 5000 if timeout_ms is None else timeout_ms
        if not 0 <= timeout_ms <= MAX_TIMEOUT_MS:
            raise InvalidArgument(f"timeoutMs must be between 0 and {MAX_TIMEOUT_MS}")
        versions = token_versions(info, token, "token")
        result = await wait_until_applied(info, versions, PROJECTIONS, timeout_ms / 1000)
        yield CaughtUp(
            caught_up=result.caught_up,
            projections=list(result.projections),
            waited_ms=result.waited_ms,
        )

    @strawberry.subscription(
        description="Emits the order as the read model holds it now, then again each time the "
        "order projection changes it."
    )
    async def order_updated(
        self, info: Info[Context, None], id: strawberry.ID
    ) -> AsyncGenerator[Order, None]:
        # Run once for all the sockets that subscribe alike (SHARED_FIELDS in broadcast.py):
        # what it emits may depend on the caller only through broadcast.audience.
        principal = access.caller(info)
        order_id = _uuid_argument(id, "id")
        services = info.context.services
        key = order_key(order_id)
        # With its history, an order is emitted once order_history has its version too: its
        # status and its timeline agree (the two projections apply an event one after the
        # other, a few milliseconds apart).
        with_history = _selects(info, "history")
        watched = (*_ORDER_VIEW, ProjectionName.ORDER_HISTORY) if with_history else _ORDER_VIEW

        async def behind(row: RowMapping) -> bool:
            if not with_history:
                return False
            return await _history_version(services.query_engine, order_id) < int(row["version"])

        def shown_to_caller(row: RowMapping | None) -> RowMapping | None:
            # Someone else's order reads as one that does not exist (yet): nothing emitted.
            visible = row is not None and principal.may_see_customer(row["customer_id"])
            return row if visible else None

        async def read(watch: Watch) -> RowMapping | None:
            # Subscribers of this order rung by the same change share one read.
            return shown_to_caller(
                await services.shared_reads.read(
                    key, watch.rung_at, lambda: read_order(services.query_engine, str(order_id))
                )
            )

        shown = 0
        while True:
            # No watch is held across the yield: a client that vanishes while a value is
            # on its way leaves nothing registered. The re-read after registering again
            # catches any change made meanwhile.
            async with services.changes.watch(watched, [key]) as watch:
                row = await read(watch)
                while row is None or row["version"] <= shown or await behind(row):
                    await watch.wait(None)
                    watch.take()
                    row = await read(watch)
            shown = row["version"]
            yield Order.from_row(row)

    @strawberry.subscription(
        description="Emits each order the order projection creates or changes, optionally for "
        "one customer."
    )
    async def orders_changed(
        self, info: Info[Context, None], customer_id: strawberry.ID | None = None
    ) -> AsyncGenerator[Order, None]:
        customer = access.orders_of(info, _uuid_argument(customer_id, "customerId"))
        services = info.context.services
        keys = [customer_orders_key(customer)] if customer is not None else None
        shown = _Shown()
        async with services.changes.watch(_ORDER_VIEW, keys) as watch:
            while True:
                await watch.wait(None)
                changed, resync = watch.take()
                rows = await _changed_orders(services.query_engine, changed, customer, resync)
                for row in shown.newer(rows):
                    yield Order.from_row(row)

    @strawberry.subscription(
        description="Emits the status of every projection now, then every intervalMs "
        "(at least 200)."
    )
    async def projection_status(
        self, info: Info[Context, None], interval_ms: int | None = 1000
    ) -> AsyncGenerator[list[ProjectionStatus], None]:
        access.admin(info, "projectionStatus")
        interval_ms = 1000 if interval_ms is None else interval_ms
        if not MIN_INTERVAL_MS <= interval_ms <= MAX_TIMEOUT_MS:
            raise InvalidArgument(
                f"intervalMs must be between {MIN_INTERVAL_MS} and {MAX_TIMEOUT_MS}"
            )
        while True:
            yield await projection_status_list(info.context.services)
            await asyncio.sleep(interval_ms / 1000)


class _Shown:
    """The versions ordersChanged has emitted, so none is emitted twice or after a newer one."""

    def __init__(self) -> None:
        self.versions: OrderedDict[Any, int] = OrderedDict()

    def newer(self, rows: Sequence[RowMapping]) -> list[RowMapping]:
        fresh = []
        for row in sorted(rows, key=lambda r: (r["updated_at"], str(r["id"]))):
            if row["version"] > self.versions.get(row["id"], 0):
                self.versions[row["id"]] = row["version"]
                self.versions.move_to_end(row["id"])
                fresh.append(row)
        while len(self.versions) > _REMEMBERED:  # bounded memory for endless streams
            self.versions.popitem(last=False)
        return fresh


async def _changed_orders(
    engine: AsyncEngine, changed: set[ChangeKey], customer: UUID | None, resync: bool
) -> Sequence[RowMapping]:
    """The announced orders (of the customer, if given); after a resync, the latest ones."""
    ids = [key.subject for key in changed if key.kind is KeyKind.ORDER]
    query = select(order_view)
    if resync:  # announcements may have been lost: look at what changed most recently
        query = query.order_by(order_view.c.updated_at.desc()).limit(_RESYNC_LIMIT)
    elif ids:
        query = query.where(order_view.c.id.in_(ids))
    else:
        return []
    if customer is not None:
        query = query.where(order_view.c.customer_id == customer)
    async with engine.connect() as connection:
        return (await connection.execute(query)).mappings().all()
