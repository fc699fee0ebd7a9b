"""The normalized store: customers, products, orders, order lines, idempotency records.

Revision ID: w0002
Revises: w0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP, UUID

revision = "w0002"
down_revision = "w0001"
branch_labels = None
depends_on = None

_TIME = TIMESTAMP(timezone=True)


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("registered_at", _TIME, nullable=False),
        sa.UniqueConstraint("email", name="customers_email_key"),
    )
    op.create_table(
        "products",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("price_cents", sa.BigInteger, nullable=False),
        sa.Column("stock", sa.BigInteger, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.UniqueConstraint("sku", name="products_sku_key"),
        sa.CheckConstraint("stock >= 0", name="products_stock_not_negative"),
    )
    op.create_table(
        "orders",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("customer_id", UUID(as_uuid=True), sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("cancel_reason", sa.Text),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("placed_at", _TIME, nullable=False),
        sa.CheckConstraint(
            "status IN ('PLACED', 'PAID', 'SHIPPED', 'CANCELLED')", name="orders_status_known"
        ),
    )
    op.create_index("orders_customer", "orders", ["customer_id"])
    op.create_table(
        "order_lines",
        sa.Column("order_id", UUID(as_uuid=True), sa.ForeignKey("orders.id"), primary_key=True),
        sa.Column("line_no", sa.SmallInteger, primary_key=True),
        sa.Column("product_id", UUID(as_uuid=True), sa.ForeignKey("products.id"), nullable=False),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("product_name", sa.Text, nullable=False),
        sa.Column("unit_price_cents", sa.BigInteger, nullable=False),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.CheckConstraint("quantity > 0", name="order_lines_quantity_positive"),
    )
    op.create_index("order_lines_product", "order_lines", ["product_id"])
    op.create_table(
        "idempotency",
        sa.Column("command_id", sa.Text, primary_key=True),
        sa.Column("command_name", sa.Text, nullable=False),
        sa.Column("input_hash", sa.Text, nullable=False),
        sa.Column("result", JSONB, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
    )


def downgrade() -> None:
    for table in ("idempotency", "order_lines", "orders", "products", "customers"):
        op.drop_table(table)
