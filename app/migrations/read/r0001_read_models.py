"""The read models, their version guards, projection state and dead letters.

Revision ID: r0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP, UUID

revision = "r0001"
down_revision = None
branch_labels = None
depends_on = None

_TIME = TIMESTAMP(timezone=True)
_PROJECTIONS = ("order_view", "customer_summary", "product_catalogue", "daily_sales")


def upgrade() -> None:
    _bookkeeping()
    _order_view()
    _customer_summary()
    _product_catalogue()
    _daily_sales()


def _bookkeeping() -> None:
    op.create_table(
        "projection_state",
        sa.Column("projection", sa.Text, primary_key=True),
        sa.Column("state", sa.Text, nullable=False, server_default="LIVE"),
        sa.Column("events_applied", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_applied_at", _TIME),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("projection", sa.Text, nullable=False),
        sa.Column("aggregate_id", UUID(as_uuid=True), nullable=False),
        sa.Column("aggregate_version", sa.Integer, nullable=False),
        sa.Column("event_id", UUID(as_uuid=True), nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("envelope", JSONB, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("parked_at", _TIME, nullable=False),
        sa.UniqueConstraint("projection", "event_id", name="dead_letters_event"),
    )
    op.create_index(
        "dead_letters_aggregate",
        "dead_letters",
        ["projection", "aggregate_id", "aggregate_version"],
    )
    for name in _PROJECTIONS:
        op.create_table(
            f"{name}_applied",
            sa.Column("aggregate_id", UUID(as_uuid=True), primary_key=True),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("parked", sa.Boolean, nullable=False, server_default="false"),
        )


def _order_view() -> None:
    op.create_table(
        "order_view",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("customer_name", sa.Text, nullable=False),
        sa.Column("customer_email", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("lines", JSONB, nullable=False),
        sa.Column("item_count", sa.Integer, nullable=False),
        sa.Column("total_cents", sa.BigInteger, nullable=False),
        sa.Column("cancel_reason", sa.Text),
        sa.Column("placed_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    # Orders lists are newest first, keyset-paginated on (placed_at, id).
    op.execute("CREATE INDEX order_view_newest ON order_view (placed_at DESC, id DESC)")
    op.execute(
        "CREATE INDEX order_view_customer ON order_view (customer_id, placed_at DESC, id DESC)"
    )
    op.execute("CREATE INDEX order_view_status ON order_view (status, placed_at DESC, id DESC)")
    op.execute("CREATE INDEX order_view_total ON order_view (total_cents)")


def _customer_summary() -> None:
    op.create_table(
        "customer_summary",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("email", sa.Text),
        sa.Column("name", sa.Text),
        sa.Column("registered_at", _TIME),
        sa.Column("order_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("total_spent_cents", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_order_at", _TIME),
        sa.Column("version", sa.Integer, nullable=False, server_default="0"),
    )
    shown = "WHERE version > 0"
    op.execute(
        f"CREATE INDEX customer_summary_newest ON customer_summary "
        f"(registered_at DESC, id DESC) {shown}"
    )
    op.execute(
        f"CREATE INDEX customer_summary_spent ON customer_summary "
        f"(total_spent_cents DESC, id DESC) {shown}"
    )
    op.execute(
        f'CREATE INDEX customer_summary_name ON customer_summary (lower(name) COLLATE "C", id) '
        f"{shown}"
    )


def _product_catalogue() -> None:
    op.create_table(
        "product_catalogue",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("sku", sa.Text),
        sa.Column("name", sa.Text),
        sa.Column("price_cents", sa.BigInteger),
        sa.Column("stock", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("units_sold", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("revenue_cents", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("version", sa.Integer, nullable=False, server_default="0"),
    )
    shown = "WHERE version > 0"
    op.execute(
        f'CREATE INDEX product_catalogue_name ON product_catalogue (lower(name) COLLATE "C", id) '
        f"{shown}"
    )
    op.execute(
        f"CREATE INDEX product_catalogue_price ON product_catalogue (price_cents, id) {shown}"
    )
    op.execute(
        f"CREATE INDEX product_catalogue_sold ON product_catalogue (units_sold DESC, id) {shown}"
    )
    op.execute(
        "CREATE INDEX product_catalogue_in_stock ON product_catalogue "
        '(lower(name) COLLATE "C", id) WHERE version > 0 AND stock > 0'
    )
    # Case-insensitive search in name or sku uses trigrams where the server has pg_trgm.
    op.execute(
        """
        DO $$
        BEGIN
          IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
            BEGIN
              CREATE EXTENSION IF NOT EXISTS pg_trgm;
            EXCEPTION WHEN insufficient_privilege THEN
              RAISE NOTICE 'pg_trgm could not be created: product search will scan';
              RETURN;
            END;
            CREATE INDEX product_catalogue_search ON product_catalogue
              USING gin ((lower(name) || ' ' || lower(sku)) gin_trgm_ops);
          END IF;
        END $$
        """
    )


def _daily_sales() -> None:
    op.create_table(
        "daily_sales",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("orders_placed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("orders_cancelled", sa.Integer, nullable=False, server_default="0"),
        sa.Column("items_sold", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("revenue_cents", sa.BigInteger, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    for table in (
        "daily_sales", "product_catalogue", "customer_summary", "order_view",
        *(f"{name}_applied" for name in _PROJECTIONS), "dead_letters", "projection_state",
    ):  # fmt: skip
        op.drop_table(table)
