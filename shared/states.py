"""The one job state machine, used by the API, the scheduler and the worker alike.

    queued ──► scheduled ──► running ──► succeeded | failed | cancelled
       ▲           │            ├──► cancelling ──► cancelled (succeeded/failed if it ended first)
       │           │            ├──► preempted ─┐
       │           │            └──► lost ──────┤
       └───────────┴────────────────────────────┘  back to queued while attempts remain

A sweep (shared/sweeps/) holds no devices and is never placed: it goes queued ──► running
directly when its first child starts, and ends as its children do.

Every change is one compare-and-set UPDATE (`WHERE id = :id AND state = :expected`) plus an
event row, in one transaction: a redelivered or duplicated message that tries to start a job
twice finds the state already moved and changes nothing. A change to a final state also writes
its webhook deliveries (shared/webhooks/events.py) in that transaction, and a start or an end
adds its queue wait or run time to the histograms /metrics shows (shared/job_timings.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from functools import lru_cache
from typing import Any

from sqlalchemy import Insert, bindparam, insert, tuple_, update
from sqlalchemy.orm import Session

from shared import job_timings
from shared.loaded_rows import attach_as_loaded, with_defaults
from shared.models import Job, JobEvent, utcnow
from shared.webhooks.events import job_ended


class JobState(str, Enum):
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    CANCELLING = "cancelling"
    PREEMPTED = "preempted"
    LOST = "lost"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


S = JobState
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    # queued -> running: a sweep, which no node runs, starts with its first child.
    S.QUEUED: frozenset({S.SCHEDULED, S.RUNNING, S.CANCELLED}),
    # scheduled -> queued: the message could not be sent, or the node went away before claiming.
    S.SCHEDULED: frozenset({S.RUNNING, S.QUEUED, S.CANCELLED, S.LOST}),
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLING, S.PREEMPTED, S.LOST}),
    S.CANCELLING: frozenset({S.CANCELLED, S.SUCCEEDED, S.FAILED}),
    S.PREEMPTED: frozenset({S.QUEUED, S.FAILED, S.CANCELLED}),
    S.LOST: frozenset({S.QUEUED, S.FAILED, S.CANCELLED}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}
TERMINAL: frozenset[JobState] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
ACTIVE: frozenset[JobState] = frozenset({S.SCHEDULED, S.RUNNING, S.CANCELLING})


class InvalidTransitionError(ValueError):
    """The state machine has no edge from one state to another."""


def check_transition(current: JobState, target: JobState) -> None:
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none (final)"
        raise InvalidTransitionError(
            f"a {current.value} job cannot become {target.value}; allowed: {allowed}"
        )


def transition(
    session: Session,
    job_id: str,
    expected: JobState,
    target: JobState,
    reason: str,
    *,
    attempt: int | None = None,
    **fields: Any,
) -> bool:
    """Move job `job_id` from `expected` to `target` if and only if it is still `expected`
    (and, when given, still in `attempt`). Records an event; sets `fields` on the row in the
    same UPDATE. Returns False, changing nothing, when another actor moved the job first.
    The caller owns the transaction (commit makes the change and its event visible together).
    """
    check_transition(expected, target)
    now = utcnow()
    values = _moved_values(expected, target, now, fields)
    where = [Job.id == job_id, Job.state == expected.value]
    if attempt is not None:
        where.append(Job.attempt == attempt)
    moved = session.execute(
        update(Job)
        .where(*where)
        .values(**values)
        .returning(Job.attempt, Job.kind, Job.started_at, Job.finished_at)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if moved is None:
        return False
    current_attempt, kind, started_at, finished_at = moved
    _count_timings(session, target, now, [(job_id, kind, started_at, finished_at)])
    session.add(
        JobEvent(
            job_id=job_id,
            from_state=expected.value,
            to_state=target.value,
            attempt=current_attempt,
            reason=reason,
            created_at=now,
        )
    )
    if target in TERMINAL:
        job_ended(session, job_id)
    session.flush()
    return True


# Built once: a job's creation writes with these on every submission.
_INSERT_JOB = insert(Job)
_INSERT_EVENT = insert(JobEvent)


def insert_created(session: Session, values: dict[str, Any], reason: str = "submitted") -> Job:
    """Write a new job, its columns `values` (the rest take their defaults), and its first
    event, from nothing to its state, in the caller's transaction. The job comes back attached
    to `session` as if loaded (shared/loaded_rows.py): later changes to it flush as usual.

    Plain INSERTs rather than the unit of work, which took longer than the statements
    themselves, and on PostgreSQL one statement for both (bench/api.py: each statement of a
    submission cost the API about as much as the rest of its Python)."""
    session.flush()  # the caller's pending rows first (the owner, say): the job may refer to them
    row = with_defaults(Job, values)
    # Columns without a value are left out, as the ORM leaves out unset attributes: a JSON
    # column sent None would hold JSON 'null', not SQL NULL.
    given = {key: value for key, value in row.items() if value is not None}
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        named = {f"job_{key}": value for key, value in given.items()}
        connection.execute(_job_and_event(tuple(given)), {**named, "event_reason": reason})
    else:  # SQLite (the embedded mode) has no INSERT inside a WITH
        connection.execute(_INSERT_JOB, given)
        connection.execute(
            _INSERT_EVENT,
            {
                "job_id": row["id"],
                "from_state": None,
                "to_state": row["state"],
                "attempt": row["attempt"],
                "reason": reason,
                "created_at": row["created_at"],
            },
        )
    return attach_as_loaded(session, Job, row)


def _moved_values(
    expected: JobState, target: JobState, now: datetime, fields: dict[str, Any]
) -> dict[str, Any]:
    """What a move from `expected` to `target` sets on the job row besides `fields`."""
    values: dict[str, Any] = {"state": target.value, "updated_at": now, **fields}
    if target in TERMINAL:
        values.setdefault("finished_at", now)
    if target == S.RUNNING:
        values.setdefault("started_at", now)
    if target == S.QUEUED and expected != S.SCHEDULED:
        values["attempt"] = Job.attempt + 1
    return values


@dataclass(frozen=True)
class Move:
    """One job's part of `transition_many`: which attempt moves, why, and its own fields."""

    job_id: str
    attempt: int
    reason: str
    fields: dict[str, Any] = field(default_factory=dict)


def transition_many(
    session: Session, moves: Sequence[Move], expected: JobState, target: JobState, **fields: Any
) -> set[str]:
    """`transition` for many jobs at once, in three statements rather than two per job: one
    compare-and-set UPDATE of every job still `expected` in its attempt (setting `fields`),
    one UPDATE per distinct set of per-job fields (sent as one batch), one INSERT of all
    the events. Returns the ids that moved; the others changed nothing (another actor moved
    them first). As with `transition`, the caller owns the transaction."""
    check_transition(expected, target)
    if not moves:
        return set()
    now = utcnow()
    jobs = Job.__table__
    moved = list(
        session.execute(
            update(jobs)  # type: ignore[arg-type]
            .where(
                # The ids alone let PostgreSQL find the rows by primary key; the pairs then
                # filter those few (alone, they were an OR of every pair for every queued row).
                jobs.c.id.in_([m.job_id for m in moves]),
                tuple_(jobs.c.id, jobs.c.attempt).in_([(m.job_id, m.attempt) for m in moves]),
                jobs.c.state == expected.value,
            )
            .values(**_moved_values(expected, target, now, fields))
            .returning(
                jobs.c.id, jobs.c.attempt, jobs.c.kind, jobs.c.started_at, jobs.c.finished_at
            )
        )
    )
    moved_attempts = {(job_id, attempt) for job_id, attempt, *_ in moved}
    done = [m for m in moves if (m.job_id, m.attempt) in moved_attempts]
    _count_timings(session, target, now, [(row[0], *row[2:]) for row in moved])
    _set_own_fields(session, done)
    if done:
        session.execute(
            insert(JobEvent.__table__),  # type: ignore[arg-type]
            [
                {
                    "job_id": m.job_id,
                    "from_state": expected.value,
                    "to_state": target.value,
                    "attempt": m.attempt,
                    "reason": m.reason,
                    "created_at": now,
                }
                for m in done
            ],
        )
    if target in TERMINAL:
        for m in done:
            job_ended(session, m.job_id)
    session.flush()
    return {m.job_id for m in done}


def _count_timings(
    session: Session,
    target: JobState,
    now: datetime,
    moved: Sequence[tuple[str, str, datetime | None, datetime | None]],
) -> None:
    """Each moved job's (id, kind, started_at, finished_at) into the timing histograms: a
    start adds the wait since the job was last queued, an end the job to its final state's
    count and, after a start, its run time."""
    if target == S.RUNNING:
        queued = job_timings.latest_queued(session, [job_id for job_id, *_ in moved])
        job_timings.count(
            session,
            (
                (job_timings.QUEUE_WAIT, kind, "", job_timings.seconds_between(queued[job_id], now))
                for job_id, kind, _, _ in moved
                if job_id in queued
            ),
        )
    elif target in TERMINAL:
        ran = [
            (job_timings.DURATION, kind, target.value, job_timings.seconds_between(start, end))
            for _, kind, start, end in moved
            if start is not None and end is not None
        ]
        ended = [(job_timings.ENDED, kind, target.value, 0.0) for _, kind, _, _ in moved]
        job_timings.count(session, ran + ended)


def _set_own_fields(session: Session, moves: list[Move]) -> None:
    """Each job's own fields: one statement per set of field names, many parameter sets."""
    by_names: dict[tuple[str, ...], list[Move]] = {}
    for move in moves:
        if move.fields:
            by_names.setdefault(tuple(sorted(move.fields)), []).append(move)
    jobs = Job.__table__
    for names, group in by_names.items():
        session.execute(
            update(jobs)  # type: ignore[arg-type]
            .where(jobs.c.id == bindparam("_job"))
            # A bind parameter may not share its column's name in an UPDATE's SET.
            .values({name: bindparam(f"_{name}") for name in names}),
            [{"_job": m.job_id, **{f"_{k}": v for k, v in m.fields.items()}} for m in group],
        )


@lru_cache(maxsize=16)
def _job_and_event(columns: tuple[str, ...]) -> Insert:
    """One PostgreSQL statement writing a job (`columns`, as `job_<column>` parameters) and
    its first event (`event_reason`): the job's INSERT is a data-modifying WITH of the
    event's. Built once per set of columns (a submission and a sweep each give one)."""
    job = insert(Job).values({c: bindparam(f"job_{c}") for c in columns}).cte("job")
    event = insert(JobEvent).values(
        job_id=bindparam("job_id"),
        from_state=None,
        to_state=bindparam("job_state"),
        attempt=bindparam("job_attempt"),
        reason=bindparam("event_reason"),
        created_at=bindparam("job_created_at"),
    )
    return event.add_cte(job)
