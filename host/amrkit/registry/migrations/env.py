"""Alembic environment: runs on the connection amrkit.registry.migrate hands
over (config.attributes["connection"]); no alembic.ini, no logging setup."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from amrkit.registry.models import Base

connection: Connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
