"""Alembic's entry point: run the migrations on the connection `clbench db` passes in."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=True)  # batch: SQLite's ALTER TABLE
with context.begin_transaction():
    context.run_migrations()
