"""Projection bookkeeping: progress per projection and the per-aggregate version guard.

Revision ID: r0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TIMESTAMP, UUID

revision = "r0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projection_progress",
        sa.Column("projection", sa.Text, primary_key=True),
        sa.Column("events_applied", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_applied_at", TIMESTAMP(timezone=True)),
    )
    # The version each projection has applied per aggregate: an event at or below it is a
    # redelivery and is skipped, which makes at-least-once delivery apply exactly once.
    op.create_table(
        "projection_versions",
        sa.Column("projection", sa.Text, primary_key=True),
        sa.Column("aggregate_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("projection_versions")
    op.drop_table("projection_progress")
