"""Alembic environment: runs on the connection audiencesync hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from audiencesync.control.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    # Only reached when a developer runs the alembic CLI by hand.
    url = context.config.get_main_option("sqlalchemy.url") or "sqlite:///.audiencesync/control.db"
    with create_engine(url).begin() as own_connection:
        context.configure(connection=own_connection, target_metadata=Base.metadata)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
