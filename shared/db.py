"""Database engine and sessions.

One engine per process and URL. SQLite (the embedded mode) gets WAL and a busy timeout so the
API, scheduler and worker processes can share one file; PostgreSQL is used as is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TypeGuard

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
    wait_random,
)

log = logging.getLogger(__name__)

# SQLite: how long a writer waits for another process's lock before failing. Progress writes
# are tiny, so a few seconds covers any real contention.
SQLITE_BUSY_TIMEOUT_MS = 10_000
# Seconds to wait for a PostgreSQL connection: a server that is gone should say so quickly
# (the API answers 503, a worker retries) rather than hang a thread.
CONNECT_TIMEOUT_S = 5
# How long the writes a running job cannot do without (an artifact's row, its final state)
# keep retrying while the database is unreachable: a restart or failover takes minutes, a
# longer outage fails the attempt, which the reconciler then requeues.
OUTAGE_RETRY_S = 15 * 60.0
# A pooled PostgreSQL connection is pinged at checkout only when it has sat unused this long.
# A server restart or failover takes seconds, so a connection back from the pool within a
# second of its last use is almost surely alive, and a busy API (every connection reused
# within milliseconds) saves a round trip per request; after an outage every pooled
# connection has been idle far longer and is tested and replaced before its first query. The
# rare stale one that slips under the bound fails its query as unreachable: the API answers
# 503 with Retry-After, workers retry through_outages, and SQLAlchemy drops the whole pool.
PING_AFTER_IDLE_S = 1.0
# PostgreSQL connections a process keeps open between uses: at least the API's request threads
# (shared.config.DEFAULT_API_THREADS, 8), each holding one while it answers. With 5 kept, a
# busy API closed the connections past the fifth as they came back and opened new ones for
# the next burst (a new PostgreSQL backend each): bench.api's submissions spent 7% of the
# API's time connecting. Processes with fewer threads never open as many, and the pool hands
# out the connection returned last (LIFO), so a quiet API reuses one warm connection, not
# each of ten in turn, each idle past PING_AFTER_IDLE_S.
POOL_SIZE = 10


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(
        url,
        pool_size=POOL_SIZE,
        max_overflow=10,
        pool_use_lifo=True,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
    )
    ping_when_idle(engine, PING_AFTER_IDLE_S)
    return engine


def ping_when_idle(engine: Engine, idle_s: float) -> None:
    """Test a pooled connection at checkout when it has been unused for `idle_s` (a cheaper
    `pool_pre_ping`, which pings at every checkout); a dead one is replaced by the pool."""

    def mark_used(_dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
        record.info["ganforge_last_used"] = time.monotonic()

    def check(dbapi_connection, record, _proxy) -> None:  # type: ignore[no-untyped-def]
        last_used = record.info.get("ganforge_last_used", 0.0)
        if time.monotonic() - last_used < idle_s:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError(f"pooled connection is dead: {error}") from error
        if not alive:
            raise DisconnectionError("pooled connection is dead")
        record.info["ganforge_last_used"] = time.monotonic()

    event.listen(engine, "connect", mark_used)
    event.listen(engine, "checkin", mark_used)
    event.listen(engine, "checkout", check)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@lru_cache(maxsize=8)
def _session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    session = _session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_unreachable(error: BaseException) -> TypeGuard[DBAPIError]:
    """True for a database that cannot be reached now (down, restarting, network), as opposed
    to a query it refused."""
    if isinstance(error, OperationalError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def through_outages(seconds: float = OUTAGE_RETRY_S) -> Retrying:
    """Retry a block while the database is unreachable, backing off to 10 s between tries:

    for attempt in through_outages():
        with attempt, session_scope(url) as session:
            ...
    """
    return Retrying(
        retry=retry_if_exception(is_unreachable),
        wait=wait_exponential(multiplier=0.5, max=10) + wait_random(0, 0.5),
        stop=stop_after_delay(seconds),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )
