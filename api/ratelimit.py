"""Per-token request rate limit, counted in Redis so every API process shares the count.

A fixed one-minute window per token (`INCRBY` + `EXPIRE`, one round trip): simple, shared by
all gunicorn workers and replicas, and enough to stop a runaway script from starving the
lab's other users. Past the limit the answer is 429 with `Retry-After` (the seconds left in
the window). With the embedded broker there is no Redis, and one local user: no limit. When
Redis cannot be reached the request goes through (logged): a missing counter must not turn
into an outage of the API.

Each process counts its own requests and adds them to the shared count at most every SYNC_S,
not at every request: a Redis round trip on every poll cost more than the rest of the poll
under load (bench/api.py). Near the limit (past SYNC_EVERY_REQUEST_ABOVE of it) every request
is counted at once, so a single process refuses exactly at the limit; across processes a
token may pass it by what the others admitted in their last SYNC_S, and is refused by every
process within SYNC_S after.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import redis
from flask import current_app, g

from api.problems import ApiProblem
from api.state import settings

log = logging.getLogger(__name__)

WINDOW_S = 60
# Redis is on the request path: a slow one costs at most this, then the request goes on.
REDIS_TIMEOUT_S = 0.5
# How stale the shared count a process decides on may be: a tenth of a second is invisible
# against a per-minute limit and turns a poller's hundreds of round trips a second into ten.
SYNC_S = 0.1
# From this share of the limit on, every request is counted in Redis at once.
SYNC_EVERY_REQUEST_ABOVE = 0.9


@cache
def shared_redis(url: str) -> redis.Redis:
    """This process's Redis client for the API's shared counts (rates, stream leases): one
    connection pool, and Redis on the request path costs at most REDIS_TIMEOUT_S."""
    return redis.Redis.from_url(
        url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
    )


@dataclass
class _Window:
    """One token's window as this process sees it."""

    shared: int = 0  # the shared count at the last sync, this process's part included
    unsent: int = 0  # this process's requests since
    synced_at: float = float("-inf")


class RateCounts:
    """This process's counts, by Redis key, synced to Redis as the module docstring says."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def count(self, client: redis.Redis, key: str, limit: int) -> int:
        """Count one request under `key`; returns the count it makes (an estimate between
        syncs). Raises RedisError when Redis is unreachable (the request is still counted)."""
        now = self.clock()
        with self._lock:
            window = self._windows.setdefault(key, _Window())
            window.unsent += 1
            estimate = window.shared + window.unsent
            fresh = now - window.synced_at < SYNC_S
            if fresh and estimate <= limit * SYNC_EVERY_REQUEST_ABOVE:
                return estimate
            sending, window.unsent, window.synced_at = window.unsent, 0, now
        try:
            # No MULTI/EXEC: the two commands travel in one round trip either way, and an
            # EXPIRE lost to a crash between them only leaves a key of a past window behind.
            pipe = client.pipeline(transaction=False)
            pipe.incrby(key, sending)
            pipe.expire(key, WINDOW_S * 2)
            shared = int(pipe.execute()[0])
        except redis.RedisError:
            with self._lock:
                window.unsent += sending
            raise
        with self._lock:
            window.shared = max(window.shared, shared)
            self._forget_past_windows(key)
            return shared + window.unsent

    def _forget_past_windows(self, current: str) -> None:
        window = current.rsplit(":", 1)[-1]
        for key in [k for k in self._windows if k.rsplit(":", 1)[-1] != window]:
            del self._windows[key]


def rate_counts() -> RateCounts:
    return current_app.extensions.setdefault("ganforge.rate_counts", RateCounts())  # type: ignore[no-any-return]


def check_rate() -> None:
    """Count this request against its token; 429 past GANFORGE_RATE_LIMIT per minute."""
    config = settings()
    limit, token = config.rate_limit_per_minute, getattr(g, "token", None)
    if limit <= 0 or token is None or config.is_embedded_broker:
        return
    now = time.time()
    window = int(now // WINDOW_S)
    key = f"ganforge:rate:{token.id}:{window}"
    try:
        count = rate_counts().count(shared_redis(config.broker_url), key, limit)
    except redis.RedisError as error:
        log.warning("rate limit not checked (Redis unreachable): %s", error)
        return
    if count > limit:
        retry_after = max(1, int((window + 1) * WINDOW_S - now + 0.999))
        raise ApiProblem(
            429,
            "Too many requests",
            f"this token made more than {limit} requests this minute; try again in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
