"""Preemption: a running job is asked to checkpoint and give its devices back, then requeued.

The scheduler asks when a higher-priority job needs a preemptible job's devices; a worker told
to stop (SIGTERM) asks for every job it runs. The request is a column (`preempt_reason`) the
job's supervisor reads; the ranks stop at their next check and save a checkpoint, so the steps
redone afterwards are none (at most one checkpoint interval if the ranks had to be killed).
A preemption is not a failure: the requeued attempt gets one more attempt in its budget.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.models import Job, Reservation
from shared.states import JobState, transition


def request_preemption(session: Session, job_ids: list[str], reason: str) -> None:
    """Ask running jobs to stop and be requeued (a job already asked keeps its first reason)."""
    session.execute(
        update(Job)
        .where(
            Job.id.in_(job_ids),
            Job.state == JobState.RUNNING.value,
            Job.preempt_reason.is_(None),
        )
        .values(preempt_reason=reason)
    )


def running_on(session: Session, node: str) -> list[str]:
    """The ids of the jobs running on `node` now."""
    return list(
        session.scalars(
            select(Job.id)
            .join(Reservation, Reservation.job_id == Job.id)
            .where(Reservation.node_name == node, Job.state == JobState.RUNNING.value)
            .distinct()
        )
    )


def requeue_preempted(session: Session, job_id: str, attempt: int) -> bool:
    """End a stopped attempt as `preempted` and queue the next one; False if the job was not
    asked to give way (or moved on meanwhile)."""
    reason = session.scalar(
        select(Job.preempt_reason).where(Job.id == job_id, Job.attempt == attempt)
    )
    if reason is None:
        return False
    if not transition(
        session, job_id, JobState.RUNNING, JobState.PREEMPTED, reason, attempt=attempt
    ):
        return False
    return transition(
        session,
        job_id,
        JobState.PREEMPTED,
        JobState.QUEUED,
        "requeued after preemption; resumes from its checkpoint",
        preempt_reason=None,
        max_attempts=Job.max_attempts + 1,
    )
