"""The scheduler's log of passes that failed: one line when failing starts or changes cause,
one when passes go through again, with how many failed in between.

A database outage fails every pass (several a second with wake-ups); a traceback for each
buried everything else in the log (150 in a minute). The first failure of a kind says what it
is, with a traceback only when the cause is not an unreachable database (a bug needs it; an
outage does not); the return says how long it lasted and how many passes it cost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.db import is_unreachable

log = logging.getLogger(__name__)


def _one_line(error: BaseException) -> str:
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


@dataclass
class PassFailures:
    clock: Callable[[], float] = time.monotonic
    failed: int = 0
    since: float | None = None
    _cause: str | None = field(default=None, repr=False)

    def failure(self, error: BaseException) -> None:
        cause = "database unreachable" if is_unreachable(error) else _one_line(error)
        self.failed += 1
        if self.since is None:
            self.since = self.clock()
        if cause == self._cause:
            return
        self._cause = cause
        if is_unreachable(error):
            log.warning(
                "scheduler passes fail: database unreachable (%s); retrying each pass, "
                "next line when it answers",
                _one_line(error),
            )
        else:
            log.exception("scheduler pass failed: %s", cause, exc_info=error)

    def success(self) -> None:
        if self.since is None:
            return
        log.warning(
            "scheduler passes go through again after %d failed in %.0f s (last cause: %s)",
            self.failed,
            self.clock() - self.since,
            self._cause,
        )
        self.failed, self.since, self._cause = 0, None, None
