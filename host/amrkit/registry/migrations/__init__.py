"""Alembic migrations of the registry schema, run by amrkit.registry.migrate."""
