"""The storage housekeeping the scheduler runs between passes, each at its own bounded cadence:
checkpoint retention (shared/retention.py, GANFORGE_RETENTION_INTERVAL_S) and the orphan
collector (shared/orphans.py, GANFORGE_ORPHAN_INTERVAL_S).

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

log = logging.getLogger(__name__)


class Housekeeping:
    """Runs each clean-up once its interval has passed since its last run (not at start: a
    scheduler restarting in a loop sweeps no more often)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        started = clock()
        self.last = {"retention": started, "orphans": started}
        self._store: Storage | None = None

    def maybe_run(self) -> None:
        now = self.clock()
        intervals = {
            "retention": self.settings.retention_interval_s,
            "orphans": self.settings.orphan_interval_s,
        }
        for name, interval in intervals.items():
            if now - self.last[name] < interval:
                continue
            self.last[name] = now
            try:
                self.run(name)
            except Exception:  # the store or the database: the next turn tries again
                log.exception("storage sweep %s failed", name)

    def run(self, name: str) -> int:
        """One run of sweep `name`; returns the objects it deleted."""
        if self._store is None:  # opened on first use: a scheduler that never sweeps needs none
            self._store = open_storage(self.settings)
        if name == "retention":
            return sweep_checkpoints(self.settings.database_url, self._store)
        grace = self.settings.orphan_grace_s
        return len(collect_orphans(self.settings.database_url, self._store, grace))
