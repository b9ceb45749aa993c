"""The one Celery task: claim the job in the database, run it supervised, record the outcome.

Thin on purpose: everything a job does lives in the launcher (or, for a sampling job, the
device's warm sampler) and the engine; this adapts the outcome to the state machine. A
duplicated or redelivered message finds the job no longer `scheduled` in this attempt and
returns without doing anything.
"""

from __future__ import annotations

import logging
from functools import cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db import session_scope, through_outages
from shared.logs import job_context
from shared.messaging import RUN_JOB_TASK
from shared.models import Job
from shared.pool.preemption import requeue_preempted
from shared.pool.reconciler import requeue_after_loss
from shared.pool.reservations import NodeShare, claim_share, release
from shared.pool.wakeup import wake_scheduler
from shared.states import JobState, transition
from shared.storage import Storage, open_storage
from worker.bundles import BundleCache
from worker.celery_app import agent, app, settings
from worker.supervisor import RunOutcome, supervise
from worker.warm.client import run_warm, takes_warm

log = logging.getLogger(__name__)


@app.task(name=RUN_JOB_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job(job_id: str, attempt: int) -> str:
    with job_context(job_id, attempt):  # the worker's records about it carry its id
        return _run_job(job_id, attempt)


def _run_job(job_id: str, attempt: int) -> str:
    share = claim(job_id, attempt)
    if share is None:
        log.info(
            "job %s attempt %s is not scheduled any more; duplicate message dropped",
            job_id,
            attempt,
        )
        return "duplicate"
    outcome = run(job_id, attempt, share)
    for retry in through_outages():  # the outcome is written once the database is back
        with retry, session_scope(settings.database_url) as session:
            if outcome.status != "fenced":
                finish(session, job_id, attempt, outcome, share)
            # This node's devices, in the transaction that records the outcome: its processes
            # are gone by now. Other nodes of a gang free theirs as their own processes end.
            release(session, job_id, node=agent.name, attempt=attempt)
    wake_scheduler(settings, "job ended")  # its devices are free, a retry may be queued
    return outcome.status


def run(job_id: str, attempt: int, share: NodeShare) -> RunOutcome:
    """A sampling job on the device's warm sampler when one takes it (worker/warm/), anything
    else (or with no sampler answering) as a supervised launcher."""
    if takes_warm(settings, job_id):
        outcome = run_warm(settings, node_store(), job_id, attempt, share.devices[0])
        if outcome is not None:
            return outcome
    gang = ["--node-rank", str(share.node_rank), "--local-ranks", str(len(share.devices))]
    environment = device_environment(share.devices)
    return supervise(settings, node_store(), job_id, attempt, environment, gang, node_bundles())


@cache
def node_bundles() -> BundleCache:
    """The node's cache of researchers' code bundles, shared by its attempts."""
    return BundleCache.for_node(settings, node_store())


@cache
def node_store() -> Storage:
    """The worker's one client of the store, shared by its attempts' agents (each wraps it
    in retries of its own); opened on first use, so a worker starts with the store away."""
    return open_storage(settings)


def claim(job_id: str, attempt: int) -> NodeShare | None:
    """Take this node's share of the attempt, once, and mark the job running (the first node
    of a gang to start does; the others join it). None: nothing for us to run."""
    for retry in through_outages():
        with retry:
            return _claim_once(job_id, attempt)
    return None  # not reached: through_outages re-raises when it gives up


def _claim_once(job_id: str, attempt: int) -> NodeShare | None:
    with session_scope(settings.database_url) as session:
        share = claim_share(session, job_id, attempt, agent.name)
        if share is None:
            return None
        of = f" (node {share.node_rank + 1} of {share.nodes})" if share.nodes > 1 else ""
        started = transition(
            session,
            job_id,
            JobState.SCHEDULED,
            JobState.RUNNING,
            f"started on {agent.name}{of}",
            attempt=attempt,
            worker=agent.name,
        )
        if not started:
            state = session.scalar(
                select(Job.state).where(Job.id == job_id, Job.attempt == attempt)
            )
            if state != JobState.RUNNING.value:  # cancelled or given away meanwhile
                return None
    return share


def device_environment(indexes: list[int]) -> dict[str, str]:
    """Pin the ranks to the reserved GPUs; CPU slots need no pinning."""
    if any(d["kind"] == "gpu" for d in agent.devices):
        return {"CUDA_VISIBLE_DEVICES": ",".join(map(str, indexes))}
    return {}


def finish(
    session: Session, job_id: str, attempt: int, outcome: RunOutcome, share: NodeShare
) -> None:
    """Record how the attempt ended. A job asked to cancel that stopped early, or died while
    stopping, is cancelled; one asked to give way is preempted and requeued; one that finished
    before it saw the request has succeeded. In a gang, success is the rendezvous node's to
    record (its rank 0 wrote the last checkpoint); any node records a failure."""
    if outcome.ok and share.node_rank > 0:
        return
    if outcome.status == "lost":
        found = session.execute(
            select(Job.state, Job.max_attempts).where(Job.id == job_id, Job.attempt == attempt)
        ).one_or_none()
        if found is not None and found.state in (JobState.RUNNING, JobState.CANCELLING):
            requeue_after_loss(
                session, job_id, JobState(found.state), attempt, found.max_attempts, outcome.error
            )
        return
    if not outcome.ok and transition(
        session,
        job_id,
        JobState.CANCELLING,
        JobState.CANCELLED,
        "stopped on request",
        attempt=attempt,
    ):
        return
    if outcome.status == "cancelled" and requeue_preempted(session, job_id, attempt):
        return
    fields: dict[str, str | None]
    if outcome.ok:  # one that ended before a stop took effect drops the stop's reason
        target, reason, fields = JobState.SUCCEEDED, "finished", {"error": None}
    else:
        error = outcome.error or "stopped without a cancel request"
        target, reason, fields = JobState.FAILED, error, {"error": error}
    for current in (JobState.RUNNING, JobState.CANCELLING):
        if transition(session, job_id, current, target, reason, attempt=attempt, **fields):
            return
    log.warning(
        "job %s attempt %s ended (%s) but was moved on meanwhile",
        job_id,
        attempt,
        outcome.status,
    )
