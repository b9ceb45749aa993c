"""Job timing histograms kept in the database, counted where the state changes.

`/metrics` shows each attempt's queue wait (from its latest `queued` event to `running`) and
each finished job's run time (from `started_at` to `finished_at`). Read from the history at
every scrape, they cost a pass over every event and every finished job (112 s at 1,000,000
jobs). Here the state machine (shared/states.py) adds each measurement to one row of
`job_timing_buckets` (metric, kind, state, bucket) in the transaction of the state change
itself, so a scrape reads a few dozen rows; so does the count of jobs in each final state.
Counting in the database rather than in a process: the figure is the same whichever gunicorn
worker or API replica answers, survives restarts, and is never counted for a change that
rolled back. Migration 0016 counted the history once.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from datetime import datetime
from itertools import chain

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from shared.models import Job, JobEvent, JobTimingBucket, as_utc

# Seconds from queued to running: a free pool starts a job within a second or two, a busy
# one makes it wait minutes to days.
QUEUE_WAIT_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0)
# Seconds from a job's last start to its end: sampling jobs take seconds, training runs
# minutes to days.
DURATION_BUCKETS = (10.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 48 * 3600.0)
QUEUE_WAIT = "queue_wait"
DURATION = "duration"
# Jobs that reached each final state, ran or not: a histogram with the +Inf bucket alone.
# Jobs are never removed (a deleted one keeps its row), so this is the count of final rows
# that `ganforge_jobs` shows, without counting a million rows at every scrape.
ENDED = "ended"
BOUNDS: dict[str, tuple[float, ...]] = {
    QUEUE_WAIT: QUEUE_WAIT_BUCKETS,
    DURATION: DURATION_BUCKETS,
    ENDED: (),
}

# How the backfill reads the history: a server-side cursor, a batch at a time.
STREAMED = {"stream_results": True, "yield_per": 10_000}
# One measurement: (metric, kind, state or "" where the metric has no state label, seconds).
Sample = tuple[str, str, str, float]


def bucket_of(seconds: float, bounds: Sequence[float]) -> int:
    """The index of the first bound `seconds` is at most (`le` is inclusive); past the last
    bound, len(bounds), the +Inf bucket."""
    return bisect_left(bounds, seconds)


def seconds_between(start: datetime, end: datetime) -> float:
    return max(0.0, (as_utc(end) - as_utc(start)).total_seconds())


def latest_queued(session: Session, job_ids: Sequence[str]) -> dict[str, datetime]:
    """When each job was last queued (submitted or requeued): one range of the job_id index
    per job."""
    rows = session.execute(
        select(JobEvent.job_id, func.max(JobEvent.created_at))
        .where(JobEvent.job_id.in_(job_ids), JobEvent.to_state == "queued")
        .group_by(JobEvent.job_id)
    )
    return {job_id: at for job_id, at in rows}


def count(session: Session, samples: Iterable[Sample]) -> None:
    """Add `samples` to their buckets in the caller's transaction. Rows are taken in key order,
    so two transactions adding to the same buckets wait for each other, never deadlock."""
    added: dict[tuple[str, str, str, int], tuple[int, float]] = {}
    for metric, kind, state, seconds in samples:
        key = (metric, kind, state, bucket_of(seconds, BOUNDS[metric]))
        n, total = added.get(key, (0, 0.0))
        added[key] = (n + 1, total + seconds)
    if not added:
        return
    dialect = session.connection().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    table = JobTimingBucket.__table__
    for (metric, kind, state, bucket), (n, total) in sorted(added.items()):
        statement = insert(table).values(  # type: ignore[arg-type]
            metric=metric, kind=kind, state=state, bucket=bucket, count=n, total=total
        )
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["metric", "kind", "state", "bucket"],
                set_={
                    "count": table.c.count + statement.excluded.count,
                    "total": table.c.total + statement.excluded.total,
                },
            )
        )


def histograms(session: Session, metric: str) -> dict[tuple[str, str], list[tuple[int, float]]]:
    """Each (kind, state) series of `metric`: per bucket index, its own count and sum (not
    cumulative), len(BOUNDS[metric]) + 1 buckets."""
    series: dict[tuple[str, str], list[tuple[int, float]]] = {}
    size = len(BOUNDS[metric]) + 1
    rows = session.execute(
        select(
            JobTimingBucket.kind,
            JobTimingBucket.state,
            JobTimingBucket.bucket,
            JobTimingBucket.count,
            JobTimingBucket.total,
        ).where(JobTimingBucket.metric == metric)
    )
    for kind, state, bucket, n, total in rows:
        series.setdefault((kind, state), [(0, 0.0)] * size)[bucket] = (n, total)
    return series


def backfill(connection: Connection) -> int:
    """Count the history already in the database, as the scrape once did (migration 0016):
    each pair of a `queued` event and the job's next `running` event, each finished job (and
    its run time if it ran). Rows are streamed; the table must be empty. Returns the samples
    counted."""
    buckets: dict[tuple[str, str, str, int], list[float]] = {}
    counted = 0
    history = chain(
        _history_waits(connection), _history_durations(connection), _history_ends(connection)
    )
    for metric, kind, state, seconds in history:
        key = (metric, kind, state, bucket_of(seconds, BOUNDS[metric]))
        bucket = buckets.setdefault(key, [0, 0.0])
        bucket[0] += 1
        bucket[1] += seconds
        counted += 1
    if buckets:
        connection.execute(
            insert(JobTimingBucket.__table__),  # type: ignore[arg-type]
            [
                {"metric": m, "kind": k, "state": s, "bucket": b, "count": int(n), "total": t}
                for (m, k, s, b), (n, t) in sorted(buckets.items())
            ],
        )
    return counted


def _history_waits(connection: Connection) -> Iterable[Sample]:
    rows = connection.execute(
        select(JobEvent.job_id, JobEvent.to_state, JobEvent.created_at, Job.kind)
        .join(Job, Job.id == JobEvent.job_id)
        .where(JobEvent.to_state.in_(["queued", "running"]))
        .order_by(JobEvent.job_id, JobEvent.id)
        .execution_options(**STREAMED)
    )
    queued_at: dict[str, datetime] = {}
    for job_id, state, at, kind in rows:
        if state == "queued":
            queued_at[job_id] = at
        elif job_id in queued_at:
            yield QUEUE_WAIT, kind, "", seconds_between(queued_at.pop(job_id), at)


def _history_durations(connection: Connection) -> Iterable[Sample]:
    rows = connection.execute(
        select(Job.kind, Job.state, Job.started_at, Job.finished_at)
        .where(
            Job.state.in_(["succeeded", "failed", "cancelled"]),
            Job.started_at.is_not(None),
            Job.finished_at.is_not(None),
        )
        .execution_options(**STREAMED)
    )
    for kind, state, started, finished in rows:
        if started is not None and finished is not None:  # as the WHERE says; for the types
            yield DURATION, kind, state, seconds_between(started, finished)


def _history_ends(connection: Connection) -> Iterable[Sample]:
    rows = connection.execute(
        select(Job.kind, Job.state)
        .where(Job.state.in_(["succeeded", "failed", "cancelled"]))
        .execution_options(**STREAMED)
    )
    for kind, state in rows:
        yield ENDED, kind, state, 0.0
