"""What a worker reports about the job attempt it runs: heartbeats, progress, evaluations,
warnings and artifact rows; and which attempt may write at all.

Every write is fenced by attempt and state: a report from an attempt that is over (lost,
requeued, finished) changes nothing, so a late or duplicated worker can never overwrite the
current attempt's rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from shared.models import Artifact, Job, utcnow
from shared.states import ACTIVE
from shared.webhooks.events import job_warning

# A worker writes a heartbeat this often while it supervises a job.
HEARTBEAT_INTERVAL_S = 10.0


def heartbeat(session: Session, job_id: str, attempt: int) -> None:
    session.execute(
        update(Job).where(Job.id == job_id, Job.attempt == attempt).values(updated_at=utcnow())
    )


def list_artifacts(session: Session, job_id: str) -> list[Artifact]:
    return list(
        session.scalars(select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.name))
    )


# What a sampling job reads of a source job, by the source's kind: a training job's
# checkpoint, or the generator a script job saved (worker/runtime.py `save_generator`).
SAMPLED_KINDS = {"train": "checkpoint", "script": "generator"}


def latest_checkpoint(
    session: Session, job_id: str, step: int | None = None, kind: str = "checkpoint"
) -> Artifact | None:
    """The checkpoint artifact (or another stepped `kind`) at `step`, or the latest one when
    step is None."""
    query = select(Artifact).where(Artifact.job_id == job_id, Artifact.kind == kind)
    if step is not None:
        query = query.where(Artifact.step == step)
    return session.scalar(query.order_by(Artifact.step.desc()).limit(1))


def record_artifact(
    session: Session,
    job_id: str,
    *,
    name: str,
    kind: str,
    key: str,
    size: int,
    sha256: str,
    step: int | None,
) -> None:
    """Insert or replace the row for an artifact that has just been written to storage."""
    session.execute(delete(Artifact).where(Artifact.job_id == job_id, Artifact.name == name))
    session.add(
        Artifact(job_id=job_id, name=name, kind=kind, key=key, size=size, sha256=sha256, step=step)
    )


def attempt_in_progress(session: Session, job_id: str) -> int | None:
    """The attempt that may write for the job now: its current one while it is scheduled,
    running or stopping; None once it is queued again or finished."""
    return session.scalar(
        select(Job.attempt).where(Job.id == job_id, Job.state.in_([s.value for s in ACTIVE]))
    )


def report_evaluation(
    session: Session, job_id: str, attempt: int, step: int, metrics: dict[str, Any]
) -> None:
    """Store the latest quality evaluation of a running attempt (the series is in
    metrics.jsonl)."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.attempt == attempt, Job.state.in_([s.value for s in ACTIVE]))
        .values(evaluation={"step": step, **metrics}, updated_at=utcnow())
    )


def add_warning(
    session: Session, job_id: str, attempt: int, step: int, message: str, kind: str | None = None
) -> None:
    """Append a warning that begins at `step` to the job (read, extended and written under a
    row lock). One of a `kind` still open (an earlier attempt's, resumed) is not repeated.
    Its webhook deliveries (`job.warning`) are written in the same transaction."""
    job = session.scalar(
        select(Job).where(Job.id == job_id, Job.attempt == attempt).with_for_update()
    )
    if job is None:
        return
    warnings = job.warnings or []
    if kind is not None and _open_warning(warnings, kind) is not None:
        return
    entry = {"step": step, "attempt": attempt, "message": message, "at": utcnow().isoformat()}
    if kind is not None:  # a warning of a kind can end: null until it does
        entry.update(kind=kind, ended_step=None, ended_at=None)
    job.warnings = [*warnings, entry]
    job_warning(session, job_id, entry)


def end_warning(session: Session, job_id: str, attempt: int, step: int, kind: str) -> bool:
    """Mark the job's open warning of `kind` ended at `step` (a `job.warning` webhook event,
    the entry's `ended_step` set); False when none was open."""
    job = session.scalar(
        select(Job).where(Job.id == job_id, Job.attempt == attempt).with_for_update()
    )
    if job is None or (index := _open_warning(job.warnings or [], kind)) is None:
        return False
    warnings = [dict(w) for w in job.warnings or []]
    warnings[index].update(ended_step=step, ended_at=utcnow().isoformat())
    job.warnings = warnings
    job_warning(session, job_id, warnings[index])
    return True


def _open_warning(warnings: list[dict[str, Any]], kind: str) -> int | None:
    """The index of the latest warning of `kind` that has not ended, if any."""
    for index in range(len(warnings) - 1, -1, -1):
        if warnings[index].get("kind") == kind and warnings[index].get("ended_step") is None:
            return index
    return None


def report_progress(
    session: Session, job_id: str, attempt: int, progress: dict[str, Any], metrics: dict[str, Any]
) -> None:
    """Store the latest progress of a running attempt (ignored once the attempt is over)."""
    session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.attempt == attempt,
            Job.state.in_([s.value for s in ACTIVE]),
        )
        .values(progress=progress, metrics=metrics, updated_at=utcnow())
    )
