"""The scheduler process's webhook deliverer: a thread of its own beside the scheduling loop.

A thread, not a call inside each pass: a POST may wait its whole timeout (5 s) on a slow or
dead receiver, and no time budget can cut a request already in flight, so inside the loop one
bad receiver would delay every placement by seconds. The thread shares only the database
engine (thread-safe) with the loop. It runs in every scheduler process, leading or standing
by: each delivery is claimed with a compare-and-set before it is sent
(shared/webhooks/delivery.py), so two schedulers never send one twice, and a stand-by keeps
delivering while the leader is busy.
"""

from __future__ import annotations

import logging
import threading

from shared.config import Settings
from shared.webhooks.delivery import BATCH, deliver_due

log = logging.getLogger(__name__)

# Seconds between looks for due deliveries when the last look found fewer than a batch: an
# event reaches its receiver within about this long of its commit.
POLL_S = 1.0


def run_deliverer(settings: Settings, stop: threading.Event, poll_s: float = POLL_S) -> None:
    """Send due deliveries until `stop` is set; a full batch is followed at once by the next."""
    failing: str | None = None
    while not stop.is_set():
        try:
            sent = deliver_due(settings.database_url, settings.webhook_retry_s)
            if failing is not None:
                log.warning("webhook deliveries go on again (they failed: %s)", failing)
                failing = None
        except Exception as error:  # a database outage must not end the thread
            sent = 0
            if failing != type(error).__name__:  # one line per cause, not one per second
                failing = type(error).__name__
                log.warning("webhook deliveries fail: %s; retrying", error, exc_info=error)
        if sent < BATCH:
            stop.wait(poll_s)


def start_deliverer(settings: Settings, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(
        target=run_deliverer, args=(settings, stop), name="webhook-deliverer", daemon=True
    )
    thread.start()
    return thread
