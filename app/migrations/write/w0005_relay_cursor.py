"""The relay keeps a cursor instead of marking every row it publishes.

Each outbox row records the id of the transaction that wrote it; the relay's cursor holds the
highest position it has published and the snapshot it read it in. Every row at or below that
position that the snapshot saw has been published; the only rows there that have not are those
of transactions the snapshot did not see (in progress then, or started since), which the relay
finds by their transaction id. Publishing a batch writes one row, not one per event, and the
outbox stays insert-only.

Revision ID: w0005
Revises: w0004
"""

import sqlalchemy as sa
from alembic import op

revision = "w0005"
down_revision = "w0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows written before this revision have none: their transactions are long over.
    op.add_column("outbox", sa.Column("txid", sa.BigInteger))
    op.execute(
        "ALTER TABLE outbox ALTER COLUMN txid SET DEFAULT pg_current_xact_id()::text::bigint"
    )
    op.create_index("outbox_txid", "outbox", ["txid"])
    op.create_table(
        "relay_cursor",
        sa.Column("id", sa.SmallInteger, primary_key=True),
        sa.Column("through", sa.BigInteger, nullable=False),
        sa.Column("snapshot", sa.Text, nullable=False),
        sa.CheckConstraint("id = 1", name="relay_cursor_single_row"),
    )
    # Published through the last row before the first unpublished one (the rows after it that
    # were published already are sent once more: projections skip them). The ALTER above
    # waited for every transaction writing the outbox, so this snapshot sees all its rows.
    op.execute(
        "INSERT INTO relay_cursor (id, through, snapshot) SELECT 1, coalesce("
        " (SELECT min(position) - 1 FROM outbox WHERE published_at IS NULL),"
        " (SELECT max(position) FROM outbox), 0), pg_current_snapshot()::text"
    )
    op.drop_index("outbox_unpublished", "outbox")
    op.drop_column("outbox", "published_at")


def downgrade() -> None:
    op.add_column("outbox", sa.Column("published_at", sa.TIMESTAMP(timezone=True)))
    op.execute(
        "UPDATE outbox SET published_at = now() FROM relay_cursor"
        " WHERE position <= relay_cursor.through"
    )
    op.create_index(
        "outbox_unpublished",
        "outbox",
        ["position"],
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.drop_table("relay_cursor")
    op.drop_index("outbox_txid", "outbox")
    op.drop_column("outbox", "txid")
