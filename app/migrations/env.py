"""Alembic environment shared by both histories; the caller hands over the connection.

The write and read histories differ only in their version folder and version table,
both set by app.adapters.migrations.
"""

from alembic import context

context.configure(
    connection=context.config.attributes["connection"],
    version_table=context.config.attributes["version_table"],
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
