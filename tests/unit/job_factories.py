"""Jobs in a given state, moved there by the state machine as the scheduler and worker would."""

from __future__ import annotations

from itertools import pairwise

from sqlalchemy import select

from shared.config import Settings
from shared.db import session_scope
from shared.jobs.requests import submit_job
from shared.models import User
from shared.specs import validate_job_request
from shared.states import JobState, transition
from tests.helpers import train_request

S = JobState


def queued_job(settings: Settings, owner: str = "alice", name: str = "ring") -> str:
    """A training job of user `owner` (created when missing), queued."""
    with session_scope(settings.database_url) as session:
        user = session.scalar(select(User).where(User.name == owner))
        if user is None:
            user = User(name=owner)
            session.add(user)
            session.flush()
        request, spec = validate_job_request(train_request(name))
        job = submit_job(session, user, "train", request.name, spec, max_attempts=3)
        return job.id


def move(settings: Settings, job_id: str, *path: JobState, reason: str = "test") -> None:
    """Walk the job along `path` (its first entry is its current state)."""
    with session_scope(settings.database_url) as session:
        for current, target in pairwise(path):
            assert transition(session, job_id, current, target, reason), (current, target)


def running_job(settings: Settings, owner: str = "alice") -> str:
    job_id = queued_job(settings, owner)
    move(settings, job_id, S.QUEUED, S.SCHEDULED, S.RUNNING)
    return job_id


def requeued(settings: Settings, times: int) -> str:
    """A queued job scheduled and put back `times` times: 1 + 2 * times events."""
    job_id = queued_job(settings)
    move(settings, job_id, S.QUEUED, *(S.SCHEDULED, S.QUEUED) * times)
    return job_id
