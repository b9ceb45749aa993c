"""A job's live feed: what happened to it since a cursor, polled from the database and store.

The API streams it as Server-Sent Events (api/live.py): state changes (event rows), progress
(the job row's, as the worker writes it every few seconds), new lines of the stored log.txt
(read from the byte offset already sent; rank 0 uploads it within GANFORGE_LOG_FLUSH_S of a
line), and new artifacts, as they happen, then `end` once the job is in a final state.

A cursor, `<event>.<log>.<artifact>` (the last event id sent, the log bytes sent, the last
artifact id sent; a rewritten artifact gets a new id), goes with every message, so a client
that reconnects with it (`Last-Event-ID`) misses nothing and sees nothing twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.db import is_unreachable, session_scope
from shared.models import Artifact, Job, JobEvent
from shared.states import TERMINAL, JobState
from shared.storage import Storage, StorageError
from shared.storage.keys import LOG_NAME

log = logging.getLogger(__name__)

FEED_KINDS = ("state", "progress", "log", "artifact")
# The log and the metrics series change every few seconds while a job runs; the log has its
# own messages and the metrics are in `progress`, so their rewrites are not `artifact`s.
QUIET_ARTIFACT_KINDS = frozenset({"log", "metrics"})
# Seconds between looks at the database (and at the log's size): a person watching sees a
# change within a second, and a stream costs three indexed queries a second.
POLL_INTERVAL_S = 1.0


class CursorError(ValueError):
    """A cursor (`Last-Event-ID`, `?after=`) that this API did not hand out."""


@dataclass(frozen=True)
class FeedCursor:
    """Where a client is in a job's feed; None: from where the feed starts by default."""

    event: int | None = None
    log: int | None = None
    artifact: int | None = None

    def __str__(self) -> str:
        return f"{self.event or 0}.{self.log or 0}.{self.artifact or 0}"

    @classmethod
    def parse(cls, raw: str | None) -> FeedCursor:
        """`E`, `E.L` or `E.L.A`, each a non-negative integer; None or "" is the default."""
        if not raw:
            return cls()
        parts = raw.strip().split(".")
        if len(parts) > 3 or not all(_is_number(part) for part in parts):
            raise CursorError(f"not a feed position of this API: {raw[:40]!r}")
        numbers = [int(part) for part in parts] + [None] * (3 - len(parts))
        return cls(*numbers)


@dataclass(frozen=True)
class FeedMessage:
    """One thing that happened: `kind` is a FEED_KINDS entry or `end`. `item` is a JobEvent
    (state), an Artifact (artifact), or a dict (progress: state, attempt, progress, metrics;
    log: lines; end: state, attempt, error). `cursor` is the position after it."""

    kind: str
    item: Any
    cursor: FeedCursor


class JobFeed:
    """The feed of one job (whose access the caller has checked) for the kinds asked.

    Defaults when the cursor leaves a part out: every state change so far; log lines from
    the start when `log_from_start`, else from now; artifacts from now."""

    def __init__(
        self,
        database_url: str,
        store: Storage,
        job_id: str,
        kinds: Collection[str] = FEED_KINDS,
        after: FeedCursor | None = None,
        *,
        log_from_start: bool = False,
        on_storage_error: Callable[[], None] | None = None,
    ) -> None:
        self.database_url, self.store, self.job_id = database_url, store, job_id
        self.kinds = frozenset(kinds)
        self._after = after or FeedCursor()
        self._log_from_start = log_from_start
        self._on_storage_error = on_storage_error
        self.cursor: FeedCursor | None = None  # resolved at the first poll
        self._last_progress: tuple[Any, ...] | None = None

    def follow(
        self,
        max_s: float,
        keepalive_s: float,
        wait: Callable[[float], None] = time.sleep,
        poll_s: float = POLL_INTERVAL_S,
    ) -> Iterator[FeedMessage | None]:
        """Messages as they happen, `end` last once the job is final; stops after `max_s`
        without `end` (the client reconnects with the cursor). Yields None after `keepalive_s`
        without a message, for the stream to send a keep-alive."""
        started = quiet_since = time.monotonic()
        while True:
            try:
                messages, ended = self.poll()
            except Exception as error:
                if not is_unreachable(error):
                    raise
                log.warning("job feed %s: database unreachable; looking again", self.job_id)
                messages, ended = [], None
            yield from messages
            if ended is not None:
                yield ended
                return
            now = time.monotonic()
            if now - started >= max_s:
                return
            if messages:
                quiet_since = now
            elif now - quiet_since >= keepalive_s:
                quiet_since = now
                yield None
            wait(poll_s)

    def poll(self) -> tuple[list[FeedMessage], FeedMessage | None]:
        """One look: the messages since the cursor, and the `end` message if the job is final.
        The job row is read first: a final state's event, last log and artifacts were all
        committed before it, so the reads after it see them."""
        with session_scope(self.database_url) as session:
            job = session.get(Job, self.job_id)
            if self.cursor is None:
                self.cursor = self._resolve(session)
            events = self._events(session) if "state" in self.kinds else []
            artifacts = self._artifacts(session)
            log_row = find_log(session, self.job_id) if "log" in self.kinds else None
        messages: list[FeedMessage] = []
        for event in events:
            self.cursor = replace(self.cursor, event=event.id)
            messages.append(FeedMessage("state", event, self.cursor))
        if job is not None and "progress" in self.kinds:
            messages += self._progress(job)
        if log_row is not None:
            messages += self._log_lines(log_row)
        for artifact in artifacts:
            self.cursor = replace(self.cursor, artifact=artifact.id)
            if "artifact" in self.kinds and artifact.kind not in QUIET_ARTIFACT_KINDS:
                messages.append(FeedMessage("artifact", artifact, self.cursor))
        if job is None or JobState(job.state) in TERMINAL:
            end = {
                "state": job.state if job else None,
                "attempt": job.attempt if job else None,
                "error": job.error if job else None,
            }
            return messages, FeedMessage("end", end, self.cursor)
        return messages, None

    def _resolve(self, session: Session) -> FeedCursor:
        after = self._after
        log_now = 0
        if after.log is None and not self._log_from_start:
            row = find_log(session, self.job_id)
            log_now = row.size if row is not None else 0
        artifact_now = after.artifact
        if artifact_now is None:
            artifact_now = session.scalar(
                select(func.max(Artifact.id)).where(Artifact.job_id == self.job_id)
            )
        return FeedCursor(
            event=after.event or 0,
            log=after.log if after.log is not None else log_now,
            artifact=artifact_now or 0,
        )

    def _events(self, session: Session) -> list[JobEvent]:
        assert self.cursor is not None
        query = select(JobEvent).where(
            JobEvent.job_id == self.job_id, JobEvent.id > (self.cursor.event or 0)
        )
        return list(session.scalars(query.order_by(JobEvent.id)))

    def _artifacts(self, session: Session) -> list[Artifact]:
        assert self.cursor is not None
        query = select(Artifact).where(
            Artifact.job_id == self.job_id, Artifact.id > (self.cursor.artifact or 0)
        )
        return list(session.scalars(query.order_by(Artifact.id)))

    def _progress(self, job: Job) -> list[FeedMessage]:
        assert self.cursor is not None
        seen = (job.attempt, job.progress, job.metrics)
        if job.progress is None or seen == self._last_progress:
            return []
        self._last_progress = seen
        item = {
            "state": job.state,
            "attempt": job.attempt,
            "progress": job.progress,
            "metrics": job.metrics,
        }
        return [FeedMessage("progress", item, self.cursor)]

    def _log_lines(self, row: Artifact) -> list[FeedMessage]:
        """The whole lines of log.txt past the cursor. The store has no ranged read, so the
        object is fetched only when its row says it grew (the log is kilobytes)."""
        assert self.cursor is not None
        offset = self.cursor.log or 0
        if row.size <= offset:
            return []
        try:
            data = self.store.get(row.key)
        except StorageError as error:
            log.warning("job feed %s: cannot read its log now: %s", self.job_id, error)
            if self._on_storage_error is not None:
                self._on_storage_error()
            return []
        new = data[offset:]
        end = new.rfind(b"\n") + 1
        if end == 0:
            return []
        self.cursor = replace(self.cursor, log=offset + end)
        lines = new[:end].decode("utf-8", errors="replace").splitlines()
        return [FeedMessage("log", {"lines": lines}, self.cursor)]


def log_text(store: Storage, row: Artifact | None, offset: int) -> tuple[str, int]:
    """The stored log's whole lines from byte `offset`, and the offset after them."""
    if row is None or row.size <= offset:
        return "", offset
    new = store.get(row.key)[offset:]
    end = new.rfind(b"\n") + 1
    return new[:end].decode("utf-8", errors="replace"), offset + end


def find_log(session: Session, job_id: str) -> Artifact | None:
    """The job's log.txt row, if it has one yet."""
    return session.scalar(
        select(Artifact).where(Artifact.job_id == job_id, Artifact.name == LOG_NAME)
    )


def _is_number(part: str) -> bool:
    return part.isascii() and part.isdigit() and len(part) < 19
