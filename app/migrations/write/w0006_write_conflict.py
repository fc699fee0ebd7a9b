"""A function the command's write statement calls to fail when a row it read has changed.

A command reads without locks on its first attempt and writes in one statement that checks
that every row it read is as it was (app/write/write_set.py). When one is not, the statement
calls this function, which raises serialization_failure (SQLSTATE 40001): the statement writes
nothing, and the executor runs the command again, locking what it reads.

Revision ID: w0006
Revises: w0005
"""

from alembic import op

revision = "w0006"
down_revision = "w0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION write_unchanged(unchanged boolean) RETURNS boolean
        LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
          IF NOT unchanged THEN
            RAISE EXCEPTION 'a row the command read changed before it wrote'
              USING ERRCODE = 'serialization_failure';
          END IF;
          RETURN true;
        END
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION write_unchanged(boolean)")
