"""Alembic migrations: the only way the schema changes. `shared.migrate.upgrade` runs them."""
