"""Integration fixtures: the real PostgreSQL, Redis and an S3 endpoint (moto's HTTP server)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared.config import Settings
from shared.migrate import upgrade
from tests.servers import TestServer
from tests.services import fresh_database, truncate_all


@pytest.fixture(scope="session")
def pg_url(postgres: TestServer) -> Iterator[str]:
    with fresh_database(postgres.url) as url:
        upgrade(url)
        yield url


@pytest.fixture
def settings(
    pg_url: str,
    redis_service: TestServer,
    redis_client: redis.Redis,
    s3_endpoint: str,
    s3_bucket: str,
    tmp_path: Path,
) -> Iterator[Settings]:
    truncate_all(pg_url)
    queue = f"ganforge-test-{uuid.uuid4().hex[:8]}"
    yield Settings.from_env(
        {
            "GANFORGE_HOME": str(tmp_path / "home"),
            "GANFORGE_DATABASE_URL": pg_url,
            "GANFORGE_BROKER_URL": redis_service.url,
            "GANFORGE_STORAGE_URL": f"s3://{s3_bucket}/ganforge",
            "GANFORGE_S3_ENDPOINT_URL": s3_endpoint,
            "GANFORGE_QUEUE": queue,
        }
    )
    redis_client.delete(queue)
