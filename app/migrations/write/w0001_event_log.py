"""The event log: a transactional outbox that is also the permanent record of every event.

Revision ID: w0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP, UUID

revision = "w0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        # Commit order is not identity order, but an aggregate's events are serialized by its
        # version, so position order is version order within each aggregate.
        sa.Column("position", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("aggregate_type", sa.Text, nullable=False),
        sa.Column("aggregate_id", UUID(as_uuid=True), nullable=False),
        sa.Column("aggregate_version", sa.Integer, nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("schema_version", sa.SmallInteger, nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("occurred_at", TIMESTAMP(timezone=True), nullable=False),
        sa.Column("published_at", TIMESTAMP(timezone=True)),
        sa.UniqueConstraint("aggregate_id", "aggregate_version", name="outbox_aggregate_version"),
        sa.CheckConstraint("aggregate_version >= 1", name="outbox_version_positive"),
    )
    op.create_index(
        "outbox_unpublished",
        "outbox",
        ["position"],
        postgresql_where=sa.text("published_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("outbox")
