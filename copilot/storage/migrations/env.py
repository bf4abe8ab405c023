"""Alembic environment: the engine comes from the caller (copilot.storage.db.migrate)."""

from alembic import context

from copilot.storage.db import all_metadata

engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=all_metadata(),
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()
