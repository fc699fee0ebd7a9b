"""The normalized write store, as SQLAlchemy Core tables (migrations create them)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Identity,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP, UUID

metadata = MetaData()
_TIME = TIMESTAMP(timezone=True)

customers = Table(
    "customers",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("email", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("registered_at", _TIME, nullable=False),
)

products = Table(
    "products",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("sku", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("price_cents", BigInteger, nullable=False),
    Column("stock", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", _TIME, nullable=False),
    # The last line of defence: no interleaving of commands can oversell.
    CheckConstraint("stock >= 0", name="products_stock_not_negative"),
)

orders = Table(
    "orders",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("customer_id", UUID(as_uuid=True), ForeignKey("customers.id"), nullable=False),
    Column("status", Text, nullable=False),
    Column("cancel_reason", Text),
    Column("version", Integer, nullable=False),
    Column("placed_at", _TIME, nullable=False),
)

order_lines = Table(
    "order_lines",
    metadata,
    Column("order_id", UUID(as_uuid=True), ForeignKey("orders.id"), primary_key=True),
    Column("line_no", SmallInteger, primary_key=True),
    Column("product_id", UUID(as_uuid=True), ForeignKey("products.id"), nullable=False),
    Column("sku", Text, nullable=False),
    Column("product_name", Text, nullable=False),
    Column("unit_price_cents", BigInteger, nullable=False),
    Column("quantity", Integer, nullable=False),
)

idempotency = Table(
    "idempotency",
    metadata,
    # Keyed per caller, so one caller cannot take another's commandId; "*" (ANY_CALLER in
    # app/write/idempotency.py) marks the global records written before that.
    Column("caller", Text, primary_key=True, server_default="*"),
    Column("command_id", Text, primary_key=True),
    Column("command_name", Text, nullable=False),
    Column("input_hash", Text, nullable=False),
    Column("result", JSONB, nullable=False),
    Column("created_at", _TIME, nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("position", BigInteger, Identity(always=True), primary_key=True),
    Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
    Column("aggregate_type", Text, nullable=False),
    Column("aggregate_id", UUID(as_uuid=True), nullable=False),
    Column("aggregate_version", Integer, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("schema_version", SmallInteger, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("occurred_at", _TIME, nullable=False),
    # The writing transaction's id (see app/pipeline/relay.py); none on rows older than it.
    Column("txid", BigInteger, server_default=text("pg_current_xact_id()::text::bigint")),
)

# Where the relay has got to: every outbox row at or below `through` that `snapshot` saw has
# been published.
relay_cursor = Table(
    "relay_cursor",
    metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("through", BigInteger, nullable=False),
    Column("snapshot", Text, nullable=False),
    CheckConstraint("id = 1", name="relay_cursor_single_row"),
)
