"""The scheduler process's webhook deliverer: a thread of its own beside the scheduling loop.

A thread, not a call inside each pass: a POST may wait its whole timeout (5 s) on a slow or
dead receiver, and no time budget can cut a request already in flight, so inside the loop one
bad receiver would delay every placement by seconds. The thread shares only the database
engine (thread-safe) with the loop. It runs in every scheduler process, leading or standing
by: each delivery is claimed with a compare-and-set before it is sent
(shared/webhooks/delivery.py), so two schedulers never send one twice, and a stand-by keeps
delivering while the leader is busy. Within the thread, up to PARALLEL (8) deliveries are in
flight at once on a small pool (`Deliverer`), so a slow receiver delays only its own.
"""

from __future__ import annotations

import functools
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from shared.config import Settings
from shared.webhooks.delivery import PARALLEL, Sender

log = logging.getLogger(__name__)

# Seconds between looks for due deliveries when no send has finished: an event reaches its
# receiver within about this long of its commit.
POLL_S = 1.0


class Deliverer:
    """Keeps up to `workers` deliveries in flight, each on a thread of its own pool, and fills
    a thread as soon as it frees: one receiver that takes its whole timeout holds one thread,
    never the deliveries behind it. A delivery in flight here is not looked up again until it
    is done (besides the claim, which stops other schedulers)."""

    def __init__(self, sender: Sender, workers: int = PARALLEL) -> None:
        self.sender = sender
        self.workers = workers
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="webhook-post")
        self.finished = threading.Event()  # set whenever a send ends: a thread is free
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()

    def poll(self) -> int:
        """Start due deliveries on the free threads; returns how many started."""
        with self._lock:
            busy = set(self._in_flight)
        free = self.workers - len(busy)
        if free <= 0:
            return 0
        due = self.sender.due(free, excluding=busy)
        for delivery_id, attempts in due:
            with self._lock:
                self._in_flight.add(delivery_id)
            future = self.pool.submit(self.sender.attempt, delivery_id, attempts)
            future.add_done_callback(functools.partial(self._done, delivery_id))
        return len(due)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def close(self) -> None:
        """Wait for the sends in flight (each ends within its timeout); start no more."""
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _done(self, delivery_id: str, future: Future[Any]) -> None:
        with self._lock:
            self._in_flight.discard(delivery_id)
        error = None if future.cancelled() else future.exception()
        if error is not None:  # the database, most likely: the claim runs out, it is due again
            log.warning("webhook delivery %s failed to send: %s", delivery_id, error)
        self.finished.set()


def run_deliverer(settings: Settings, stop: threading.Event, poll_s: float = POLL_S) -> None:
    """Send due deliveries until `stop` is set, looking again whenever a send ends."""
    deliverer = Deliverer(Sender.from_settings(settings))
    failing: str | None = None
    try:
        while not stop.is_set():
            deliverer.finished.clear()
            try:
                deliverer.poll()
                if failing is not None:
                    log.warning("webhook deliveries go on again (they failed: %s)", failing)
                    failing = None
            except Exception as error:  # a database outage must not end the thread
                if failing != type(error).__name__:  # one line per cause, not one per second
                    failing = type(error).__name__
                    log.warning("webhook deliveries fail: %s; retrying", error, exc_info=error)
            deliverer.finished.wait(poll_s)
    finally:
        deliverer.close()


def start_deliverer(settings: Settings, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(
        target=run_deliverer, args=(settings, stop), name="webhook-deliverer", daemon=True
    )
    thread.start()
    return thread
