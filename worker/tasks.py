"""The one Celery task: claim the job in the database, run it supervised, record the outcome.

Thin on purpose: everything a job does lives in the launcher and the engine; this adapts the
outcome to the state machine. A duplicated or redelivered message finds the job no longer
`scheduled` in this attempt and returns without doing anything.
"""

from __future__ import annotations

import logging

from shared.db import session_scope
from shared.messaging import RUN_JOB_TASK
from shared.scheduler.preemption import requeue_preempted
from shared.scheduler.reservations import held_devices, release
from shared.states import JobState, transition
from worker.celery_app import agent, app, settings
from worker.supervisor import RunOutcome, supervise

log = logging.getLogger(__name__)


@app.task(name=RUN_JOB_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_job(job_id: str, attempt: int) -> str:
    with session_scope(settings.database_url) as session:
        claimed = transition(
            session,
            job_id,
            JobState.SCHEDULED,
            JobState.RUNNING,
            f"started on {agent.name}",
            attempt=attempt,
            worker=agent.name,
        )
        devices = held_devices(session, job_id, attempt).get(agent.name, [])
    if not claimed:
        log.info(
            "job %s attempt %s is not scheduled any more; duplicate message dropped",
            job_id,
            attempt,
        )
        return "duplicate"
    outcome = supervise(settings, job_id, attempt, device_environment(devices))
    if outcome.status != "fenced":
        finish(job_id, attempt, outcome)
    return outcome.status


def device_environment(indexes: list[int]) -> dict[str, str]:
    """Pin the ranks to the reserved GPUs; CPU slots need no pinning."""
    if any(d["kind"] == "gpu" for d in agent.devices):
        return {"CUDA_VISIBLE_DEVICES": ",".join(map(str, indexes))}
    return {}


def finish(job_id: str, attempt: int, outcome: RunOutcome) -> None:
    """Record how the attempt ended. A job asked to cancel that stopped early, or died while
    stopping, is cancelled; one asked to give way is preempted and requeued; one that finished
    before it saw the request has succeeded. The devices are freed in the same transaction:
    the attempt's processes are gone by now."""
    with session_scope(settings.database_url) as session:
        if not outcome.ok and transition(
            session,
            job_id,
            JobState.CANCELLING,
            JobState.CANCELLED,
            "stopped on request",
            attempt=attempt,
        ):
            release(session, job_id)
            return
        if outcome.status == "cancelled" and requeue_preempted(session, job_id, attempt):
            release(session, job_id)
            return
        if outcome.ok:
            target, reason, fields = JobState.SUCCEEDED, "finished", {}
        else:
            error = outcome.error or "stopped without a cancel request"
            target, reason, fields = JobState.FAILED, error, {"error": error}
        for current in (JobState.RUNNING, JobState.CANCELLING):
            if transition(session, job_id, current, target, reason, attempt=attempt, **fields):
                release(session, job_id)
                return
        log.warning(
            "job %s attempt %s ended (%s) but was moved on meanwhile",
            job_id,
            attempt,
            outcome.status,
        )
