"""The real services the integration and end-to-end suites use: this machine's PostgreSQL and
Redis (override with GANFORGE_TEST_PG_ADMIN_URL / GANFORGE_TEST_REDIS_URL) and a moto S3
server. Each test session gets its own database and queue, so runs never share state."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import redis

PG_ADMIN_URL = os.environ.get(
    "GANFORGE_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("GANFORGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
TABLES = "users, api_tokens, jobs, job_events, artifacts, datasets"


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty PostgreSQL database; yields its SQLAlchemy URL and drops it afterwards."""
    name = f"ganforge_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        from shared.db import get_engine

        get_engine.cache_clear()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def truncate_all(database_url: str) -> None:
    from sqlalchemy import text

    from shared.db import get_engine

    with get_engine(database_url).begin() as connection:
        connection.execute(text(f"TRUNCATE {TABLES} CASCADE"))


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL)
