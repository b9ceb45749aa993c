"""Per-session databases and queues on the suite's servers (see `tests/servers.py`), so test
runs, and the suites within one run, never share state."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import text

from shared.db import get_engine

TABLES = (
    "users, api_tokens, idempotency_keys, jobs, job_events, artifacts, datasets, code_bundles, "
    "code_archives, nodes, reservations, scheduler_lease"
)


def sqlalchemy_url(postgres_url: str) -> str:
    """A libpq URL as SQLAlchemy's psycopg 3 dialect wants it."""
    return postgres_url.replace("postgresql://", "postgresql+psycopg://", 1)


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server of `admin_url`; yields its SQLAlchemy URL and
    drops it afterwards."""
    name = f"ganforge_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{sqlalchemy_url(admin_url).rsplit('/', 1)[0]}/{name}"
    finally:
        get_engine.cache_clear()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def truncate_all(database_url: str) -> None:
    with get_engine(database_url).begin() as connection:
        connection.execute(text(f"TRUNCATE {TABLES} CASCADE"))
