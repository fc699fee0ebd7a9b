"""The order timeline: one row per order event, and its version guard.

Revision ID: r0002
Revises: r0001

Created empty on a store that already holds orders: the worker backfills it from the event
log on its first start (app/pipeline/backfill.py), and `order_history` reports CATCHING_UP
until then.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TIMESTAMP, UUID

revision = "r0002"
down_revision = "r0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "order_history",
        sa.Column("order_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("at", TIMESTAMP(timezone=True), nullable=False),
    )
    op.create_table(
        "order_history_applied",
        sa.Column("aggregate_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("parked", sa.Boolean, nullable=False, server_default="false"),
    )


def downgrade() -> None:
    op.drop_table("order_history_applied")
    op.drop_table("order_history")
