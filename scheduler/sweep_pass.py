"""The sweeps' turn in each scheduler pass (shared/sweeps/progress.py does the work).

Bounded: each call advances at most SWEEPS_PER_PASS sweeps, each in its own transaction,
carrying on from where the last call stopped, so every sweep gets its turn however many there
are, and one sweep that fails to advance (its error logged) does not hold up the others.
"""

from __future__ import annotations

import logging

from shared.config import Settings
from shared.db import session_scope
from shared.sweeps.progress import SWEEPS_PER_PASS, advance_sweep, unfinished_sweeps

log = logging.getLogger(__name__)


class SweepPass:
    def __init__(self, settings: Settings, per_pass: int = SWEEPS_PER_PASS):
        self.settings = settings
        self.per_pass = per_pass
        self.after = ""  # the last sweep id advanced; the next call starts after it

    def run(self) -> int:
        """Advance the next sweeps; returns how many were looked at."""
        with session_scope(self.settings.database_url) as session:
            ids = unfinished_sweeps(session, self.after, self.per_pass)
            if len(ids) < self.per_pass and self.after:  # wrap round to the first ones
                more = unfinished_sweeps(session, "", self.per_pass - len(ids))
                ids += [i for i in more if i not in ids]
        for sweep_id in ids:
            try:
                with session_scope(self.settings.database_url) as session:
                    advance_sweep(session, sweep_id)
            except Exception:
                log.exception("sweep %s could not advance", sweep_id, extra={"job_id": sweep_id})
        self.after = ids[-1] if ids else ""
        return len(ids)
