"""Admission of Server-Sent Events streams, so that open streams never take the whole API.

A stream (api/live.py) holds a gunicorn request thread for as long as it is open, up to
api.live.STREAM_MAX_S. Without a bound, as many streams as an API process has threads took all
of them, and every other request, `/healthz` included, waited until a stream ended. Two
bounds, checked before a stream starts; past either the answer is a 429 problem naming it:

- **Per process**: at most GANFORGE_STREAMS_PER_PROCESS at once (by default half of
  GANFORGE_API_THREADS, and always fewer than all of them), counted in memory. The other
  threads always answer ordinary requests. The count dies with its process, so a killed
  process leaks nothing.
- **Per token**, over every process and replica: at most GANFORGE_STREAMS_PER_TOKEN, so one
  token cannot take the stream slots of everyone else. Each open stream holds a lease in
  Redis, a member of the token's sorted set scored by when it runs out (Redis's own clock,
  so API hosts' clocks do not matter; scripts that read it need Redis 5 or later). The
  stream renews it every RENEW_S while it runs and removes it when it ends; the lease of a
  stream whose process was SIGKILLed or paused runs out after LEASE_S by itself. A bare
  counter would keep a dead process's streams forever.

A stream gives its slot and lease back when it ends, when its client goes (the generator is
closed), and when the response is closed without ever being read. As the rate limit does
(api/ratelimit.py), the token bound is skipped with the embedded broker (no Redis, one local
user) and when Redis cannot be reached (logged): a missing lease must not stop the API.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis
from flask import current_app, g

from api.problems import ApiProblem
from api.ratelimit import shared_redis
from api.state import settings

log = logging.getLogger(__name__)

# Seconds a token's stream lease lasts without renewal: how long the slots of a SIGKILLed
# process stay taken. Well above RENEW_S plus a slow poll, so a live stream never loses one.
LEASE_S = 20.0
# Seconds between renewals of a running stream's lease: a quarter of it, so three renewals in
# a row may fail (a Redis blip, a stalled poll) before the lease runs out.
RENEW_S = LEASE_S / 4
# What a refused client is told to wait before it asks for a stream again. A slot frees as
# soon as any stream ends; clients that cannot wait poll `GET /api/v1/jobs/<id>` meanwhile.
RETRY_AFTER_S = 5

# KEYS[1]: the token's leases; ARGV: lease id, the token's limit, lease milliseconds.
# Drops run-out leases, then adds this one if the token is under its limit: 1, else 0.
_TAKE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
# Pushes a lease's end LEASE_S past now; a lease that ran out meanwhile (Redis was away, the
# process was paused) is added again, since its stream still holds a thread.
_RENEW = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


class ProcessSlots:
    """This process's open streams, at most `limit` at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.open >= self.limit:
                return False
            self.open += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.open -= 1


class TokenLeases:
    """Each token's open streams over all API processes, as expiring leases in Redis."""

    def __init__(self, client: redis.Redis, lease_s: float = LEASE_S) -> None:
        self.client = client
        self.lease_ms = int(lease_s * 1000)
        self._take = client.register_script(_TAKE)
        self._renew = client.register_script(_RENEW)

    @staticmethod
    def key(token_id: Any) -> str:
        return f"ganforge:streams:{token_id}"

    def take(self, token_id: Any, limit: int) -> str | None:
        """A new lease's id, or None when the token holds `limit` live ones already."""
        lease = uuid.uuid4().hex
        taken = self._take(keys=[self.key(token_id)], args=[lease, limit, self.lease_ms])
        return lease if taken else None

    def renew(self, token_id: Any, lease: str) -> None:
        self._renew(keys=[self.key(token_id)], args=[lease, self.lease_ms])

    def give_back(self, token_id: Any, lease: str) -> None:
        self.client.zrem(self.key(token_id), lease)

    def held(self, token_id: Any) -> int:
        """The token's leases that have not run out (for tests and benchmarks)."""
        now_s, now_us = self.client.time()
        now_ms = now_s * 1000 + now_us // 1000
        return int(self.client.zcount(self.key(token_id), f"({now_ms}", "+inf"))


@dataclass
class StreamSlot:
    """What one admitted stream holds: a slot of its process and, with Redis, its token's
    lease. `keep()` renews the lease when due; `release()` may be called any number of times."""

    process: ProcessSlots
    leases: TokenLeases | None = None
    token_id: Any = None
    lease: str | None = None
    renewed_at: float = field(default_factory=time.monotonic)
    _released: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def keep(self) -> None:
        if self.leases is None or self.lease is None:
            return
        if time.monotonic() - self.renewed_at < RENEW_S:
            return
        self.renewed_at = time.monotonic()
        try:
            self.leases.renew(self.token_id, self.lease)
        except redis.RedisError as error:
            log.warning("stream lease not renewed (Redis unreachable): %s", error)

    def release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        self.process.give_back()
        if self.leases is not None and self.lease is not None:
            try:
                self.leases.give_back(self.token_id, self.lease)
            except redis.RedisError as error:  # the lease runs out by itself after LEASE_S
                log.warning("stream lease not given back (Redis unreachable): %s", error)


def process_slots() -> ProcessSlots:
    """This process's stream slots, made with the app's settings at first need."""
    slots = current_app.extensions.get("ganforge.stream_slots")
    if slots is None:
        slots = current_app.extensions.setdefault(
            "ganforge.stream_slots", ProcessSlots(settings().streams_per_process)
        )
    return slots  # type: ignore[no-any-return]


def token_leases() -> TokenLeases:
    leases = current_app.extensions.get("ganforge.stream_leases")
    if leases is None:
        leases = current_app.extensions.setdefault(
            "ganforge.stream_leases", TokenLeases(shared_redis(settings().broker_url))
        )
    return leases  # type: ignore[no-any-return]


def admit_stream() -> StreamSlot:
    """A slot for a stream of the request's token, or a 429 naming the bound it would pass."""
    config = settings()
    process = process_slots()
    if not process.take():
        raise _refused(
            "GANFORGE_STREAMS_PER_PROCESS",
            process.limit,
            f"this API process serves at most {process.limit} event streams at once and has "
            f"that many open (the rest of its {config.api_threads} request threads are kept "
            f"for other requests)",
        )
    slot = StreamSlot(process)
    token, limit = getattr(g, "token", None), config.streams_per_token
    if limit <= 0 or token is None or config.is_embedded_broker:
        return slot
    try:
        slot.leases, slot.token_id = token_leases(), token.id
        slot.lease = slot.leases.take(token.id, limit)
    except redis.RedisError as error:
        log.warning("stream limit per token not checked (Redis unreachable): %s", error)
        slot.leases = None
        return slot
    if slot.lease is None:
        slot.release()
        raise _refused(
            "GANFORGE_STREAMS_PER_TOKEN",
            limit,
            f"this token may hold at most {limit} event streams open and has that many: close one",
        )
    return slot


def _refused(setting: str, limit: int, why: str) -> ApiProblem:
    return ApiProblem(
        429,
        "Too many streams",
        f"{why}; poll GET /api/v1/jobs/<id> meanwhile, or try the stream again in "
        f"{RETRY_AFTER_S} s",
        headers={"Retry-After": str(RETRY_AFTER_S)},
        errors=[
            {
                "path": "Accept",
                "message": f"text/event-stream: at most {limit} streams ({setting})",
            }
        ],
        limit={"setting": setting, "value": limit},
    )
