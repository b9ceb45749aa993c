"""The storage sweeps the scheduler runs between passes, at a bounded cadence: checkpoint
retention (shared/retention.py).

In the scheduler because it is the one process that runs alone (the lease holder), so two
sweeps never race over the same objects; each run is bounded (a few jobs), and a failed one
(the store unreachable) is logged and waits for the next, never failing a scheduling pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from shared.config import Settings
from shared.retention import sweep_checkpoints
from shared.storage import Storage, open_storage

log = logging.getLogger(__name__)


class Sweeps:
    """Runs the sweeps when GANFORGE_RETENTION_INTERVAL_S has passed since the last run."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.last = clock()  # not at start: a scheduler restarting in a loop sweeps no more
        self._store: Storage | None = None

    def maybe_run(self) -> None:
        now = self.clock()
        if now - self.last < self.settings.retention_interval_s:
            return
        self.last = now
        try:
            self.run()
        except Exception:  # the store or the database: the next run tries again
            log.exception("storage sweep failed")

    def run(self) -> int:
        """One run of every sweep; returns the objects deleted."""
        if self._store is None:  # opened on first use: a scheduler that never sweeps needs none
            self._store = open_storage(self.settings)
        return sweep_checkpoints(self.settings.database_url, self._store)
