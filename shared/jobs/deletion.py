"""Deleting a finished job: its stored objects and artifact rows go, and the job is marked
deleted (`deleted_at`): from then on no API answer shows it (404, never listed).

Marked, not removed: the scheduler's fair share weighs each owner's recent device-seconds from
the job rows (scheduler/pool_state.py recent_usage), so removing the row of a job that just
ran would let its owner jump the queue by deleting it; the row (a few hundred bytes) and its
events also stay on record of what ran. What takes the space, its objects, goes.

Order, so that no failure leaves a visible job whose rows point at missing objects:
1. list the objects under the job's key prefix (a store that cannot be reached fails the
   request here, before anything changed): objects without a row (an upload cut off before
   its row was written) are found too;
2. delete the artifact rows and mark the job, with a compare-and-set on its finished state, in
   one transaction the caller commits;
3. delete the listed objects. One that cannot be deleted now is logged; it lies under the
   prefix of a deleted job, where nothing reads it, and the orphan collector
   (shared/orphans.py) takes it later.
"""

from __future__ import annotations

import logging

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from shared.jobs.readers import FINISHED, jobs_reading_job
from shared.jobs.requests import JobConflictError, JobNotFoundError, get_job
from shared.models import Artifact, Job, User, utcnow
from shared.storage import Storage, StorageError
from shared.storage.keys import job_prefix

log = logging.getLogger(__name__)


def mark_deleted(session: Session, store: Storage, caller: User, job_id: str) -> list[str]:
    """Delete the job's artifact rows and mark it deleted if `caller` may (owner or admin:
    JobNotFoundError otherwise) and it is finished (JobConflictError naming its state
    otherwise); returns the keys of its stored objects, for `delete_objects` once the caller
    has committed."""
    job = get_job(session, caller, job_id)
    if job.state not in FINISHED:
        raise JobConflictError(
            f"job {job.id} is {job.state}; only a finished job ({', '.join(FINISHED)}) can be "
            "deleted: cancel it first"
        )
    readers = jobs_reading_job(session, job.id)
    if readers:
        raise JobConflictError(
            f"job {job.id} is read by unfinished jobs {', '.join(readers)}: cancel them or "
            "wait for them to finish"
        )
    keys = [info.key for info in store.list(job_prefix(job.id))]
    # A compare-and-set: a second request deleting the same job at once finds it gone.
    marked = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.state.in_(FINISHED), Job.deleted_at.is_(None))
        .values(deleted_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if marked.rowcount != 1:  # type: ignore[attr-defined]
        raise JobNotFoundError(job.id)
    session.execute(delete(Artifact).where(Artifact.job_id == job.id))
    return keys


def delete_objects(store: Storage, keys: list[str]) -> list[str]:
    """Delete these objects; returns the keys that could not be deleted (logged)."""
    left = []
    for key in keys:
        try:
            store.delete(key)
        except StorageError as exc:
            log.warning("could not delete %s of a deleted job: %s", key, exc)
            left.append(key)
    return left
