"""Moves on the jobs whose worker went silent, so nothing stays "running" forever.

A supervising worker touches its job's `updated_at` every HEARTBEAT_INTERVAL_S (and progress
reports touch it too). A running or cancelling job silent for GANFORGE_JOB_SILENCE_S is marked
`lost`; a lost job goes back to `queued` for its next attempt (it resumes from its last
checkpoint) or, with its attempts spent, to `failed`. A cancelling job that was lost is
simply cancelled.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.config import DEFAULT_JOB_SILENCE_S
from shared.models import Job, Reservation, utcnow
from shared.states import JobState, transition

log = logging.getLogger(__name__)


def reconcile(session: Session, lost_after_s: float = DEFAULT_JOB_SILENCE_S) -> list[str]:
    """Mark silent jobs lost and requeue (or fail) them; returns the ids that moved."""
    cutoff = utcnow() - timedelta(seconds=lost_after_s)
    silent = session.execute(
        select(Job.id, Job.state, Job.attempt, Job.max_attempts).where(
            Job.state.in_([JobState.RUNNING.value, JobState.CANCELLING.value]),
            Job.updated_at < cutoff,
            # A sweep has no worker to heartbeat: its children are watched instead.
            Job.kind != "sweep",
        )
    ).all()
    reason = f"no heartbeat for {lost_after_s:.0f} s"
    return [
        job_id
        for job_id, state, attempt, max_attempts in silent
        if requeue_after_loss(session, job_id, JobState(state), attempt, max_attempts, reason)
    ]


def requeue_after_loss(
    session: Session, job_id: str, state: JobState, attempt: int, max_attempts: int, reason: str
) -> bool:
    """A job whose processes are gone (silent worker, dead node): a cancelling one is cancelled;
    a scheduled or running one is `lost`, then queued for its next attempt (which resumes from
    the last checkpoint) or, with its attempts spent, failed. False if it moved meanwhile."""
    if state == JobState.CANCELLING:
        return transition(session, job_id, JobState.CANCELLING, JobState.CANCELLED, reason)
    if not transition(session, job_id, state, JobState.LOST, reason, attempt=attempt):
        return False
    if attempt < max_attempts:
        transition(session, job_id, JobState.LOST, JobState.QUEUED, "requeued after loss")
    else:
        error = f"lost {attempt} times; no attempts left"
        transition(session, job_id, JobState.LOST, JobState.FAILED, error, error=error)
    log.warning(
        "job %s attempt %s lost: %s",
        job_id,
        attempt,
        reason,
        extra={"job_id": job_id, "attempt": attempt},
    )
    return True


def requeue_unclaimed(session: Session, claim_timeout_s: float) -> list[str]:
    """Jobs placed more than `claim_timeout_s` ago whose node never took the message (a broker
    that lost it, a send that died with its scheduler) go back to the queue in the same
    attempt: every node claims its share of an attempt at most once, so a message that still
    turns up later starts nothing twice."""
    cutoff = utcnow() - timedelta(seconds=claim_timeout_s)
    claimed = select(Reservation.job_id).where(Reservation.claimed.is_(True))
    stale = session.scalars(
        select(Job.id).where(
            Job.state == JobState.SCHEDULED.value,
            Job.updated_at < cutoff,
            Job.id.not_in(claimed),
        )
    ).all()
    reason = f"no node started it within {claim_timeout_s:.0f} s of its placement; requeued"
    moved = [
        job_id
        for job_id in stale
        if transition(session, job_id, JobState.SCHEDULED, JobState.QUEUED, reason)
    ]
    for job_id in moved:
        log.warning("job %s: %s", job_id, reason, extra={"job_id": job_id})
    return moved
