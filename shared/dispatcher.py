"""The dispatcher: one loop that hands queued jobs to workers.

It moves a job queued -> scheduled with compare-and-set, commits, and only then sends the
message, so a worker never receives a job the database does not know is scheduled. If the send
fails, the job goes back to queued for the next pass. Every few seconds it also runs the
reconciler, which requeues jobs whose worker went silent. The multi-node placement policy (fair
share, quotas, gang placement) is a later issue; this loop is where it will plug in.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import Celery
from sqlalchemy import select, update

from shared.config import Settings
from shared.db import session_scope
from shared.messaging import send_run_job
from shared.models import Job
from shared.reconciler import reconcile
from shared.states import JobState, transition

log = logging.getLogger(__name__)

# Seconds between passes when nothing was queued: a submitted job waits at most this long.
POLL_INTERVAL_S = 0.5
# Seconds between looks for jobs whose worker went silent.
RECONCILE_INTERVAL_S = 5.0
# Jobs dispatched per pass, so one pass stays one short transaction per job.
BATCH = 32


def dispatch_once(settings: Settings, celery: Celery) -> int:
    """Send every queued job (oldest first, up to BATCH); returns how many were sent."""
    with session_scope(settings.database_url) as session:
        queued = list(
            session.execute(
                select(Job.id, Job.attempt)
                .where(Job.state == JobState.QUEUED.value)
                .order_by(Job.created_at)
                .limit(BATCH)
            )
        )
    sent = 0
    for job_id, attempt in queued:
        with session_scope(settings.database_url) as session:
            claimed = transition(
                session, job_id, JobState.QUEUED, JobState.SCHEDULED, "dispatched", attempt=attempt
            )
        if not claimed:
            continue  # cancelled or taken by another dispatcher meanwhile
        try:
            task_id = send_run_job(celery, job_id, attempt, settings.queue)
        except Exception as exc:  # the broker is down: give the job back for the next pass
            log.warning("could not send job %s: %s", job_id, exc)
            with session_scope(settings.database_url) as session:
                transition(
                    session,
                    job_id,
                    JobState.SCHEDULED,
                    JobState.QUEUED,
                    f"broker unavailable: {exc}",
                    attempt=attempt,
                )
            continue
        with session_scope(settings.database_url) as session:
            session.execute(update(Job).where(Job.id == job_id).values(task_id=task_id))
        sent += 1
    return sent


def reconcile_once(settings: Settings) -> list[str]:
    with session_scope(settings.database_url) as session:
        return reconcile(session)


def run_forever(settings: Settings, celery: Celery, stop: threading.Event | None = None) -> None:
    """Dispatch until interrupted or until `stop` is set."""
    log.info("dispatcher started (queue %s)", settings.queue)
    last_reconcile = 0.0
    while stop is None or not stop.is_set():
        try:
            if time.monotonic() - last_reconcile > RECONCILE_INTERVAL_S:
                last_reconcile = time.monotonic()
                reconcile_once(settings)
            if dispatch_once(settings, celery):
                continue
        except Exception:  # a database hiccup must not kill the loop
            log.exception("dispatch pass failed")
        time.sleep(POLL_INTERVAL_S)
