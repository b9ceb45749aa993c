"""The checkpoint retention sweep: a training job whose spec sets `keep_checkpoints` keeps its
last N checkpoints (and, with `best`, the one its evaluations scored best); the others go.

Run by the scheduler (scheduler/retention.py) every GANFORGE_RETENTION_INTERVAL_S, a bounded
number of jobs at a time. What a job still needs is never deleted:
- its latest checkpoint, always among the last N (N >= 1): a queued, preempted or lost job
  resumes from it, and a running job's newest one is written after the rows read here;
- the checkpoint an unfinished sampling or evaluation job names (`spec.step`; without a step
  it reads the latest, which is kept anyway).

A swept checkpoint's row goes first, in its own transaction, then its object: a failure in
between leaves an object no row refers to, never a row whose object is gone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from shared.db import session_scope
from shared.jobs.readers import CHECKPOINT_SOURCE, FINISHED
from shared.models import Artifact, Job
from shared.specs.train import MORE_IS_BETTER, KeepCheckpoints
from shared.storage import Storage, StorageError
from shared.storage.keys import METRICS_NAME

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"
# Jobs swept per run: each costs a few queries and, with `best`, one metrics.jsonl read; the
# rest wait for the next run, so a sweep never holds the scheduler's loop for long.
JOBS_PER_SWEEP = 20


@dataclass(frozen=True)
class Checkpoint:
    id: int
    step: int
    key: str


def sweep_checkpoints(database_url: str, store: Storage, limit: int = JOBS_PER_SWEEP) -> int:
    """Sweep up to `limit` jobs holding more checkpoints than they keep; returns how many
    checkpoints were deleted."""
    with session_scope(database_url) as session:
        due = list(_jobs_over_their_keep(session))[:limit]
    return sum(_sweep_job(database_url, store, job_id, keep) for job_id, keep in due)


def _jobs_over_their_keep(session: Session) -> Iterable[tuple[str, KeepCheckpoints]]:
    """(job id, what it keeps) of the jobs holding more checkpoints than their `last`."""
    counts = (
        select(Artifact.job_id, func.count().label("n"))
        .where(Artifact.kind == CHECKPOINT)
        .group_by(Artifact.job_id)
        .having(func.count() > 1)
        .subquery()
    )
    rows = session.execute(
        select(Job.id, Job.spec, counts.c.n)
        .join(counts, counts.c.job_id == Job.id)
        .where(Job.deleted_at.is_(None))
        .order_by(Job.created_at, Job.id)
    )
    for job_id, spec, count in rows:
        raw = (spec or {}).get("keep_checkpoints")
        if raw is None:
            continue
        keep = KeepCheckpoints.model_validate(raw)
        if count > keep.last:
            yield job_id, keep


def _sweep_job(database_url: str, store: Storage, job_id: str, keep: KeepCheckpoints) -> int:
    with session_scope(database_url) as session:
        rows = [
            Checkpoint(row.id, row.step or 0, row.key)
            for row in session.scalars(
                select(Artifact)
                .where(Artifact.job_id == job_id, Artifact.kind == CHECKPOINT)
                .order_by(Artifact.step.desc())
            )
        ]
        kept = {row.step for row in rows[: keep.last]} | _steps_read(session, job_id)
        metrics = session.scalar(
            select(Artifact.key).where(Artifact.job_id == job_id, Artifact.name == METRICS_NAME)
        )
    if keep.best is not None:
        try:
            best = _best_step(store, metrics, keep.best, {row.step for row in rows})
        except StorageError as exc:  # the best is not known now: delete nothing this time
            log.warning("retention: job %s: cannot read its metrics: %s", job_id, exc)
            return 0
        if best is not None:
            kept.add(best)
    doomed = [row for row in rows if row.step not in kept]
    if not doomed:
        return 0
    with session_scope(database_url) as session:
        session.execute(delete(Artifact).where(Artifact.id.in_([row.id for row in doomed])))
    for row in doomed:
        try:
            store.delete(row.key)
        except StorageError as exc:
            log.warning("retention: could not delete %s (its row is gone): %s", row.key, exc)
    log.info("retention: job %s: deleted %d checkpoint(s)", job_id, len(doomed))
    return len(doomed)


def _steps_read(session: Session, job_id: str) -> set[int]:
    """Checkpoint steps that unfinished jobs reading this job's checkpoints name."""
    specs = session.scalars(
        select(Job.spec).where(
            Job.state.not_in(FINISHED), Job.spec[CHECKPOINT_SOURCE].as_string() == job_id
        )
    )
    return {spec["step"] for spec in specs if isinstance(spec.get("step"), int)}


def _best_step(store: Storage, metrics_key: str | None, figure: str, steps: set[int]) -> int | None:
    """The checkpoint step whose evaluation at that step scored best by `figure` (the later on
    a tie); None when none of them was evaluated. StorageError when the metrics cannot be
    read."""
    if metrics_key is None:
        return None
    scores: dict[int, float] = {}
    for line in store.get(metrics_key).decode().splitlines():
        try:
            entry: dict[str, Any] = json.loads(line)
        except ValueError:
            continue
        value = (entry.get("eval") or {}).get(figure) if isinstance(entry, dict) else None
        if entry.get("step") in steps and isinstance(value, int | float):
            scores[entry["step"]] = float(value)
    if not scores:
        return None
    sign = 1.0 if MORE_IS_BETTER[figure] else -1.0
    return max(scores, key=lambda step: (sign * scores[step], step))
