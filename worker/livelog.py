"""A running job's log.txt and metrics.jsonl, uploaded while it runs, from a background thread.

Rank 0 marks new lines as training goes (each log line, each progress report); once the oldest
line not yet stored has waited `interval_s`, a background thread uploads the files as they
stand. Someone following the job sees its lines within seconds, a job that logs a line per
step still uploads once per interval, and training never waits for the store: an upload that
fails (the store or the database away) is tried again an interval later, while the checkpoint
and end-of-run flushes upload synchronously as they always did.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class LiveUpload:
    """Calls `upload` in a background thread once marked lines have waited `interval_s`.

    `upload` must take its snapshot of the lines after it is called: lines marked while it
    runs are uploaded by the next call."""

    def __init__(self, upload: Callable[[], None], interval_s: float) -> None:
        self._upload = upload
        self.interval_s = interval_s
        self._pending_since: float | None = None  # monotonic time of the oldest unsent line
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.failures = 0  # uploads that raised, for the job's own log and the tests

    def mark(self) -> None:
        """New lines wait to be uploaded. Cheap: one lock, no I/O."""
        with self._wake:
            if self._closed or self._pending_since is not None:
                return
            self._pending_since = time.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="live-log", daemon=True)
                self._thread.start()
            self._wake.notify()

    def taken(self) -> None:
        """Everything marked so far is being uploaded now by the caller (a checkpoint's or the
        run's last flush): call it before taking the snapshot."""
        with self._wake:
            self._pending_since = None

    def close(self) -> None:
        """Stop the thread after the upload in flight, if any; later marks do nothing."""
        with self._wake:
            self._closed = True
            self._wake.notify()

    def _run(self) -> None:
        while self._wait_until_due():
            try:
                self._upload()
            except Exception as error:  # the store or the database away: next interval
                self.failures += 1
                log.warning("live log upload failed (%s); trying again later", error)
                with self._wake:
                    if self._pending_since is None:
                        self._pending_since = time.monotonic()

    def _wait_until_due(self) -> bool:
        """Wait until the oldest marked line is due; False once closed."""
        with self._wake:
            while not self._closed:
                if self._pending_since is None:
                    self._wake.wait()
                    continue
                left = self._pending_since + self.interval_s - time.monotonic()
                if left <= 0:
                    self._pending_since = None  # lines marked from now on wait for the next
                    return True
                self._wake.wait(left)
            return False
