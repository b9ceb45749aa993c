"""Per-token request rate limit, counted in Redis so every API process shares the count.

A fixed one-minute window per token (`INCR` + `EXPIRE`, one round trip): simple, shared by
all gunicorn workers and replicas, and enough to stop a runaway script from starving the
lab's other users. Past the limit the answer is 429 with `Retry-After` (the seconds left in
the window). With the embedded broker there is no Redis, and one local user: no limit. When
Redis cannot be reached the request goes through (logged): a missing counter must not turn
into an outage of the API.
"""

from __future__ import annotations

import logging
import time
from functools import cache

import redis
from flask import g

from api.problems import ApiProblem
from api.state import settings

log = logging.getLogger(__name__)

WINDOW_S = 60
# Redis is on the request path: a slow one costs at most this, then the request goes on.
REDIS_TIMEOUT_S = 0.5


@cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
    )


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
        # No MULTI/EXEC: the two commands travel in one round trip either way, and an EXPIRE
        # lost to a crash between them only leaves a key of a past window behind.
        pipe = _redis(config.broker_url).pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, WINDOW_S * 2)
        count = int(pipe.execute()[0])
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
