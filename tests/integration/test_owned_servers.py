"""The suite's own PostgreSQL and Redis can be stopped, killed and started again on the same URL,
which is what the fault tests build on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
import redis

from tests.servers import TestServer


@pytest.fixture
def restarted_after(postgres: TestServer, redis_service: TestServer) -> Iterator[None]:
    """Whatever a test breaks, later tests find both servers up."""
    yield
    postgres.start()
    redis_service.start()


def _postgres_answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2) as connection:
            return connection.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def test_postgres_killed_with_sigkill_refuses_clients_and_restarts_with_its_data(
    postgres: TestServer, restarted_after: None
) -> None:
    table = f"survivor_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres.url, autocommit=True) as connection:
        connection.execute(f"CREATE TABLE {table} (n int)")
        connection.execute(f"INSERT INTO {table} VALUES (42)")
    held = psycopg.connect(postgres.url, autocommit=True)

    postgres.kill()
    assert not _postgres_answers(postgres.url)
    with pytest.raises(psycopg.OperationalError):
        held.execute("SELECT 1")

    postgres.start()
    with psycopg.connect(postgres.url, autocommit=True) as connection:
        assert connection.execute(f"SELECT n FROM {table}").fetchall() == [(42,)]
        connection.execute(f"DROP TABLE {table}")


def test_postgres_stopped_cleanly_comes_back_on_the_same_url(
    postgres: TestServer, restarted_after: None
) -> None:
    postgres.stop()
    assert not _postgres_answers(postgres.url)
    postgres.start()
    assert _postgres_answers(postgres.url)


def test_redis_killed_and_restarted_comes_back_empty_on_the_same_url(
    redis_service: TestServer, restarted_after: None
) -> None:
    client = redis.Redis.from_url(redis_service.url, socket_timeout=2)
    client.set("ganforge-test-key", "kept?")

    redis_service.kill()
    with pytest.raises(redis.ConnectionError):
        client.ping()

    redis_service.start()
    assert client.ping()
    assert client.get("ganforge-test-key") is None, "a Redis that keeps nothing on disk"
