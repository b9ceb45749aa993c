"""The housekeeping the scheduler runs between passes, each at its own bounded cadence:
checkpoint retention (shared/retention.py, GANFORGE_RETENTION_INTERVAL_S), the orphan
collector (shared/orphans.py, GANFORGE_ORPHAN_INTERVAL_S) and the removal of old webhook
deliveries (shared/webhooks/cleanup.py, hourly).

In the scheduler because it is the one process that runs alone (the lease holder), so two
sweeps never race over the same objects; each run is bounded, and a failed one (the store
unreachable) is logged and waits for its next turn, never failing a scheduling pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from shared.config import Settings
from shared.orphans import collect_orphans
from shared.retention import sweep_checkpoints
from shared.storage import Storage, open_storage
from shared.webhooks.cleanup import remove_old_deliveries

log = logging.getLogger(__name__)

# Old webhook deliveries are removed hourly: their bound is a month, so an hour more or less
# is nothing, and each run deletes a bounded number of rows.
DELIVERY_CLEANUP_INTERVAL_S = 3600.0


class Housekeeping:
    """Runs each clean-up once its interval has passed since its last run (not at start: a
    scheduler restarting in a loop sweeps no more often)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        started = clock()
        self.last = {"retention": started, "orphans": started, "deliveries": started}
        self._store: Storage | None = None

    def maybe_run(self) -> None:
        now = self.clock()
        intervals = {
            "retention": self.settings.retention_interval_s,
            "orphans": self.settings.orphan_interval_s,
            "deliveries": DELIVERY_CLEANUP_INTERVAL_S,
        }
        for name, interval in intervals.items():
            if now - self.last[name] < interval:
                continue
            self.last[name] = now
            try:
                self.run(name)
            except Exception:  # the store or the database: the next turn tries again
                log.exception("housekeeping %s failed", name)

    def run(self, name: str) -> int:
        """One run of sweep `name`; returns the objects (or rows) it deleted."""
        if name == "deliveries":
            settings = self.settings
            return remove_old_deliveries(settings.database_url, settings.webhook_history_s)
        if self._store is None:  # opened on first use: a scheduler that never sweeps needs none
            self._store = open_storage(self.settings)
        if name == "retention":
            return sweep_checkpoints(self.settings.database_url, self._store)
        grace = self.settings.orphan_grace_s
        return len(collect_orphans(self.settings.database_url, self._store, grace))
