"""Which unfinished jobs still need another job's objects or a dataset: the checks that keep a
deletion (or a retention sweep) from pulling what a queued or running job will read.

A spec names what it reads in a few places: a sampling or evaluate job's `job_id` (the
checkpoints it loads), a sampling job's `latents.job_id` (a latents artifact) and
`invert.images` (a PNG artifact of a job, or an uploaded dataset), a training job's
`data.dataset_id`, and a sweep's `base` (the children it has yet to create). Each is one JSON
path, looked up by the database (SQLite's json_extract, PostgreSQL's #>>).
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from shared.models import Job
from shared.states import TERMINAL

FINISHED = tuple(sorted(state.value for state in TERMINAL))
# Where sampling and evaluate jobs name the job whose checkpoints they load.
CHECKPOINT_SOURCE = "job_id"
JOB_PATHS: tuple[tuple[str, ...], ...] = (
    (CHECKPOINT_SOURCE,),
    ("latents", "job_id"),
    ("invert", "images", "job_id"),
)
DATASET_PATHS: tuple[tuple[str, ...], ...] = (
    ("data", "dataset_id"),
    ("invert", "images", "dataset_id"),
    ("base", "data", "dataset_id"),
)
# Named in a refusal; the rest are "and more".
SHOWN = 10


def jobs_reading_job(session: Session, job_id: str) -> list[str]:
    """Unfinished jobs whose spec names job `job_id` as one they read from."""
    return _unfinished_naming(session, JOB_PATHS, job_id)


def jobs_reading_dataset(session: Session, dataset_id: str) -> list[str]:
    """Unfinished jobs whose spec names dataset `dataset_id` (a sweep's base among them)."""
    return _unfinished_naming(session, DATASET_PATHS, dataset_id)


def _unfinished_naming(
    session: Session, paths: tuple[tuple[str, ...], ...], value: str
) -> list[str]:
    named = [Job.spec[path].as_string() == value for path in paths]
    query = (
        select(Job.id)
        .where(Job.state.not_in(FINISHED), Job.deleted_at.is_(None), or_(*named))
        .order_by(Job.created_at, Job.id)
        .limit(SHOWN)
    )
    return list(session.scalars(query))
