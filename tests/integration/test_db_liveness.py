"""Pooled PostgreSQL connections are tested at checkout only after sitting idle
(shared.db.ping_when_idle): an idle connection whose server side died is replaced before its
first query, and one reused within the bound costs no ping."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from shared.db import ping_when_idle


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    engine = create_engine(pg_url, pool_size=1, max_overflow=0)
    yield engine
    engine.dispose()


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _kill_backend(pg_url: str, pid: int) -> None:
    """As a server restart does to every connection: its server process goes away."""
    other = create_engine(pg_url)
    with other.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    other.dispose()


def test_an_idle_connection_killed_server_side_is_replaced_before_its_first_query(
    engine: Engine, pg_url: str
) -> None:
    ping_when_idle(engine, idle_s=0.0)  # every checkout counts as after an idle spell
    first = _backend_pid(engine)
    _kill_backend(pg_url, first)
    assert _backend_pid(engine) != first, "a fresh connection answered"


def test_a_connection_reused_within_the_bound_is_not_pinged(engine: Engine, pg_url: str) -> None:
    ping_when_idle(engine, idle_s=3600.0)
    pinged: list[object] = []
    original = engine.dialect.do_ping

    def counted_ping(dbapi_connection: object) -> bool:
        pinged.append(dbapi_connection)
        return original(dbapi_connection)

    engine.dialect.do_ping = counted_ping  # type: ignore[method-assign]
    first = _backend_pid(engine)
    assert _backend_pid(engine) == first and not pinged
    # The price of the bound: a connection that died unseen within it fails its query as
    # unreachable (the API answers 503, workers retry) and the pool starts afresh.
    _kill_backend(pg_url, first)
    with pytest.raises(DBAPIError) as failed:
        _backend_pid(engine)
    assert failed.value.connection_invalidated
    assert _backend_pid(engine) != first
