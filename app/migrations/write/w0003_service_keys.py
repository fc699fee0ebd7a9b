"""Keys the service generates for itself, such as the one consistency tokens are signed with.

Revision ID: w0003
Revises: w0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TIMESTAMP

revision = "w0003"
down_revision = "w0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows are made by the first API process that needs one (app/adapters/service_keys.py),
    # not here: deleting a row and restarting the API processes makes a new key (rotation).
    op.create_table(
        "service_keys",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("key", sa.LargeBinary, nullable=False),
        sa.Column(
            "created_at", TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint("octet_length(key) >= 32", name="service_keys_key_long_enough"),
    )


def downgrade() -> None:
    op.drop_table("service_keys")
