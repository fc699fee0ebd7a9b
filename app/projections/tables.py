"""The read store: denormalized read tables, one set per projection, and their bookkeeping.

Tables are named without a schema on purpose: a rebuild fills shadow copies in another
schema by setting the search path, then swaps them in (see app.pipeline.rebuild).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Integer,
    MetaData,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP, UUID

from app.projections.names import ProjectionName

metadata = MetaData()
_TIME = TIMESTAMP(timezone=True)


def applied_table(projection: ProjectionName) -> Table:
    """The version guard of one projection: the last version applied per aggregate.

    An event at or below it is a redelivery and is skipped, which turns at-least-once delivery
    into exactly-once effect. `parked` marks an aggregate with an event in the dead letters:
    its later events are parked behind it so order stays sound.
    """
    return Table(
        f"{projection}_applied",
        metadata,
        Column("aggregate_id", UUID(as_uuid=True), primary_key=True),
        Column("version", Integer, nullable=False),
        Column("parked", Boolean, nullable=False, server_default="false"),
    )


projection_state = Table(
    "projection_state",
    metadata,
    Column("projection", Text, primary_key=True),
    Column("state", Text, nullable=False, server_default="LIVE"),
    Column("events_applied", BigInteger, nullable=False, server_default="0"),
    Column("last_applied_at", _TIME),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("projection", Text, nullable=False),
    Column("aggregate_id", UUID(as_uuid=True), nullable=False),
    Column("aggregate_version", Integer, nullable=False),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("event_type", Text, nullable=False),
    Column("envelope", JSONB, nullable=False),  # the stream entry, replayable as it came
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("parked_at", _TIME, nullable=False),
)

# Each projection's read table is named after it.
order_view = Table(
    ProjectionName.ORDER_VIEW,
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("customer_id", UUID(as_uuid=True), nullable=False),
    Column("customer_name", Text, nullable=False),
    Column("customer_email", Text, nullable=False),
    Column("status", Text, nullable=False),
    # [{productId, sku, productName, quantity, unitPriceCents, lineTotalCents}], as placed
    Column("lines", JSONB, nullable=False),
    Column("item_count", Integer, nullable=False),
    Column("total_cents", BigInteger, nullable=False),
    Column("cancel_reason", Text),
    Column("placed_at", _TIME, nullable=False),
    Column("updated_at", _TIME, nullable=False),
    Column("version", Integer, nullable=False),
)

# Order events may be applied before the customer's or product's own creation event (they
# travel on other partitions), so these rows are upserted from either side: counters are
# added to, and a row is shown only once its own creation event set version >= 1.
customer_summary = Table(
    ProjectionName.CUSTOMER_SUMMARY,
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("email", Text),
    Column("name", Text),
    Column("registered_at", _TIME),
    Column("order_count", Integer, nullable=False, server_default="0"),
    Column("total_spent_cents", BigInteger, nullable=False, server_default="0"),
    Column("last_order_at", _TIME),
    Column("version", Integer, nullable=False, server_default="0"),
)

product_catalogue = Table(
    ProjectionName.PRODUCT_CATALOGUE,
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("sku", Text),
    Column("name", Text),
    Column("price_cents", BigInteger),
    Column("stock", BigInteger, nullable=False, server_default="0"),
    Column("units_sold", BigInteger, nullable=False, server_default="0"),
    Column("revenue_cents", BigInteger, nullable=False, server_default="0"),
    Column("version", Integer, nullable=False, server_default="0"),
)

daily_sales = Table(
    ProjectionName.DAILY_SALES,
    metadata,
    Column("day", Date, primary_key=True),
    Column("orders_placed", Integer, nullable=False, server_default="0"),
    Column("orders_cancelled", Integer, nullable=False, server_default="0"),
    Column("items_sold", BigInteger, nullable=False, server_default="0"),
    Column("revenue_cents", BigInteger, nullable=False, server_default="0"),
)

# One row per order event: the order's timeline (migration r0002).
order_history = Table(
    ProjectionName.ORDER_HISTORY,
    metadata,
    Column("order_id", UUID(as_uuid=True), primary_key=True),
    Column("version", Integer, primary_key=True),  # the order's version after the event
    Column("event", Text, nullable=False),  # the event type's name
    Column("status", Text, nullable=False),  # the order's status after the event
    Column("at", _TIME, nullable=False),
)

APPLIED = {name: applied_table(name) for name in ProjectionName}
