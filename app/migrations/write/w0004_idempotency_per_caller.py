"""Idempotency records keyed by (caller, commandId), so one caller cannot squat another's id.

Revision ID: w0004
Revises: w0003
"""

import sqlalchemy as sa
from alembic import op

revision = "w0004"
down_revision = "w0003"
branch_labels = None
depends_on = None

# Records written before this revision were global and their writer is not known: they get
# "*", which no caller identity ever is ("" or "role:subject"), and which lookups match for
# every caller (app/write/idempotency.py), so a retry spanning the upgrade still replays.
# The default also lets processes of the previous release, still running until they are
# replaced, keep remembering their commands, as global records.
ANY_CALLER = "*"


def upgrade() -> None:
    op.add_column(
        "idempotency",
        sa.Column("caller", sa.Text, nullable=False, server_default=ANY_CALLER),
    )
    op.drop_constraint("idempotency_pkey", "idempotency", type_="primary")
    op.create_primary_key("idempotency_pkey", "idempotency", ["caller", "command_id"])


def downgrade() -> None:
    # A global key holds one record per commandId: the earliest is kept, as it was then.
    op.execute(
        "DELETE FROM idempotency AS later USING idempotency AS earlier"
        " WHERE later.command_id = earlier.command_id"
        " AND (later.created_at, later.caller) > (earlier.created_at, earlier.caller)"
    )
    op.drop_constraint("idempotency_pkey", "idempotency", type_="primary")
    op.drop_column("idempotency", "caller")
    op.create_primary_key("idempotency_pkey", "idempotency", ["command_id"])
