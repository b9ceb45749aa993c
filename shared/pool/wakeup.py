"""Wake-ups: the scheduler runs a pass as soon as something changed, not at its next poll.

Whoever changes what a pass would decide (the API after it commits a new job or a cancel, a
worker after a job ends and frees devices) calls `wake_scheduler`: an LPUSH on a Redis list
named after the deployment's queue, trimmed to one entry (ten submissions in a burst need one
pass, not ten). The scheduler loop waits on it with BLPOP, the poll interval
(GANFORGE_SCHEDULER_POLL_S) as the timeout, so a lost wake-up costs one poll at most.

The embedded service has no Redis: there the wake-up is a datagram to a Unix socket the
scheduler binds in Linux's abstract namespace, named after GANFORGE_HOME (no file to clean
up, no path-length limit), read the same way; elsewhere it polls.

Best effort on both sides: a wake-up that cannot be sent (Redis down, no scheduler listening)
is logged or skipped, never an error for the submission; a scheduler that cannot wait on
Redis sleeps the poll interval instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import select
import socket
import sys
import threading
import time
from functools import cache

import redis

from shared.config import Settings

log = logging.getLogger(__name__)

# Sending a wake-up sits on the API's request path: a Redis that does not answer in this long
# costs the request this much once, then the poll picks the job up.
SEND_TIMEOUT_S = 0.5
# The least time between two wake-ups one API process sends. Under a stream of submissions
# the waker had sent one for nearly every submission (0.64 each under bench.api's 32
# clients), a Redis round trip each in the API process, for passes that cannot run that often;
# a job submitted meanwhile waits at most this much more for its pass.
WAKE_INTERVAL_S = 0.1
# The waiting side's socket allows this much on top of the BLPOP timeout before it counts the
# connection as broken.
WAIT_SLACK_S = 5.0


def wakeup_key(settings: Settings) -> str:
    """One list per deployment: test sessions and labs sharing a Redis never wake each other."""
    return f"{settings.queue}:scheduler-wakeup"


def _bind_local(settings: Settings) -> socket.socket | None:
    """The embedded scheduler's wake-up socket, or None (then it polls) where it cannot bind:
    no abstract namespace, or another scheduler of the same home holds it."""
    address = local_wakeup_address(settings)
    if address is None:
        return None
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        receiver.bind(address)
    except OSError as error:
        receiver.close()
        log.warning("no wake-up socket (%s); polling every %s s", error, settings.scheduler_poll_s)
        return None
    receiver.setblocking(False)
    return receiver


@cache
def _client(url: str, timeout_s: float) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)


def local_wakeup_address(settings: Settings) -> str | None:
    """The embedded scheduler's wake-up socket: an abstract Unix address (a leading NUL) per
    GANFORGE_HOME; None where the platform has no abstract namespace."""
    if not sys.platform.startswith("linux"):
        return None
    home = hashlib.sha256(str(settings.home.resolve()).encode()).hexdigest()[:24]
    return f"\0ganforge-wakeup-{home}"


def wake_scheduler(settings: Settings, reason: str = "") -> bool:
    """Ask the scheduler for a pass now; False when the wake-up could not be sent."""
    if settings.is_embedded_broker:
        return _wake_local(settings)
    key = wakeup_key(settings)
    try:
        pipe = _client(settings.broker_url, SEND_TIMEOUT_S).pipeline(transaction=False)
        pipe.lpush(key, reason or "wake")
        pipe.ltrim(key, 0, 0)
        pipe.execute()
    except redis.RedisError as error:
        log.warning("scheduler not woken (%s); it finds the change at its next poll", error)
        return False
    return True


class _Waker:
    """One thread per process that sends the wake-ups asked for with `wake_scheduler_soon`:
    the request that asks returns without waiting for Redis, and the asks of a burst go as
    one wake-up per WAKE_INTERVAL_S, not one each."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.asked = threading.Event()
        self.reason = ""
        thread = threading.Thread(target=self._run, name="scheduler-waker", daemon=True)
        thread.start()

    def ask(self, reason: str) -> None:
        self.reason = reason
        self.asked.set()

    def _run(self) -> None:
        sent_at = float("-inf")
        while True:
            self.asked.wait()
            # Asks within WAKE_INTERVAL_S of the last wake-up wait for the interval's end and
            # go as one; the first after a quiet spell goes at once.
            time.sleep(max(0.0, sent_at + WAKE_INTERVAL_S - time.monotonic()))
            self.asked.clear()
            wake_scheduler(self.settings, self.reason)
            sent_at = time.monotonic()


# One waker per process and deployment (the home names the embedded scheduler's socket).
_wakers: dict[tuple[int, str, str, str], _Waker] = {}
_wakers_lock = threading.Lock()


def wake_scheduler_soon(settings: Settings, reason: str = "") -> None:
    """`wake_scheduler` from a thread of this process's own (started on first use, after any
    fork): for the API, whose submissions need not wait for the wake-up's round trip."""
    key = (os.getpid(), settings.broker_url, settings.queue, str(settings.home))
    waker = _wakers.get(key)
    if waker is None:
        with _wakers_lock:
            waker = _wakers.get(key) or _wakers.setdefault(key, _Waker(settings))
    waker.ask(reason)


def _wake_local(settings: Settings) -> bool:
    address = local_wakeup_address(settings)
    if address is None:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        try:
            sender.sendto(b"wake", address)
        except OSError:  # no scheduler bound (not started yet, or stopped): it polls
            return False
    return True


class Wakeups:
    """The scheduler's side: `wait()` returns when woken, or after the poll interval."""

    def __init__(self, settings: Settings) -> None:
        self.poll_s = settings.scheduler_poll_s
        self.key = wakeup_key(settings)
        self._redis = (
            None
            if settings.is_embedded_broker
            else _client(settings.broker_url, self.poll_s + WAIT_SLACK_S)
        )
        self._local = _bind_local(settings) if settings.is_embedded_broker else None

    def close(self) -> None:
        if self._local is not None:
            self._local.close()

    def wait(self) -> bool:
        """Block until a wake-up or the poll interval; True when woken."""
        if self._local is not None:
            readable, _, _ = select.select([self._local], [], [], self.poll_s)
            if not readable:
                return False
            while True:  # a burst of submissions needs one pass, not one each
                try:
                    self._local.recv(64)
                except BlockingIOError:
                    return True
        if self._redis is None:
            time.sleep(self.poll_s)
            return False
        started = time.monotonic()
        try:
            # BLPOP's timeout is in whole seconds before Redis 6; 6+ takes fractions.
            woken = self._redis.blpop([self.key], timeout=self.poll_s) is not None
        except redis.RedisError as error:
            log.warning("cannot wait for wake-ups (%s); polling", error)
            time.sleep(max(0.0, self.poll_s - (time.monotonic() - started)))
            return False
        return woken
