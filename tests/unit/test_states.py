import pytest
from sqlalchemy import select

from shared.config import Settings
from shared.db import session_scope
from shared.jobs.requests import submit_job
from shared.models import Job, JobEvent, User
from shared.specs import TrainSpec
from shared.states import (
    TERMINAL,
    TRANSITIONS,
    InvalidTransitionError,
    JobState,
    check_transition,
    transition,
)
from tests.helpers import RING_SPEC, user_token


@pytest.fixture
def job_id(settings: Settings) -> str:
    user_token(settings, "carol")
    with session_scope(settings.database_url) as session:
        owner = session.scalar(select(User).where(User.name == "carol"))
        job = submit_job(
            session, owner, "train", "j", TrainSpec.model_validate(RING_SPEC), max_attempts=3
        )
        return job.id


def state_of(settings: Settings, job_id: str) -> Job:
    with session_scope(settings.database_url) as session:
        return session.get(Job, job_id)


def test_the_lifecycle_of_the_architecture_document() -> None:
    # queued -> running is a sweep's, which holds no devices (shared/sweeps/progress.py).
    assert TRANSITIONS[JobState.QUEUED] == {
        JobState.SCHEDULED,
        JobState.RUNNING,
        JobState.CANCELLED,
    }
    assert {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED} == TERMINAL
    for back_to_queue in (JobState.PREEMPTED, JobState.LOST):
        assert JobState.QUEUED in TRANSITIONS[back_to_queue]


@pytest.mark.parametrize("final", sorted(TERMINAL))
def test_final_states_have_no_way_out(final: JobState) -> None:
    with pytest.raises(InvalidTransitionError, match="none \\(final\\)"):
        check_transition(final, JobState.QUEUED)


def test_compare_and_set_moves_only_from_the_expected_state(
    settings: Settings, job_id: str
) -> None:
    with session_scope(settings.database_url) as session:
        assert transition(session, job_id, JobState.QUEUED, JobState.SCHEDULED, "dispatched")
    with session_scope(settings.database_url) as session:
        # a second dispatcher with the same stale view changes nothing
        assert not transition(session, job_id, JobState.QUEUED, JobState.SCHEDULED, "again")
    assert state_of(settings, job_id).state == "scheduled"


def test_claim_is_bound_to_the_attempt(settings: Settings, job_id: str) -> None:
    with session_scope(settings.database_url) as session:
        transition(session, job_id, JobState.QUEUED, JobState.SCHEDULED, "dispatched")
    with session_scope(settings.database_url) as session:
        assert not transition(
            session, job_id, JobState.SCHEDULED, JobState.RUNNING, "old message", attempt=7
        )
        assert transition(session, job_id, JobState.SCHEDULED, JobState.RUNNING, "go", attempt=1)
    job = state_of(settings, job_id)
    assert job.state == "running" and job.started_at is not None


def test_every_transition_is_recorded_with_reason_and_attempt(
    settings: Settings, job_id: str
) -> None:
    steps = [
        (JobState.QUEUED, JobState.SCHEDULED, "dispatched"),
        (JobState.SCHEDULED, JobState.RUNNING, "started"),
        (JobState.RUNNING, JobState.LOST, "node stopped heartbeating"),
        (JobState.LOST, JobState.QUEUED, "requeued"),
    ]
    for expected, target, reason in steps:
        with session_scope(settings.database_url) as session:
            assert transition(session, job_id, expected, target, reason)
    with session_scope(settings.database_url) as session:
        events = list(session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)))
    assert [(e.from_state, e.to_state) for e in events] == [
        (None, "queued"),
        ("queued", "scheduled"),
        ("scheduled", "running"),
        ("running", "lost"),
        ("lost", "queued"),
    ]
    assert events[-1].attempt == 2, "a requeue after a lost run starts the next attempt"
    assert events[3].reason == "node stopped heartbeating"


def test_invalid_transition_is_refused_before_touching_the_row(
    settings: Settings, job_id: str
) -> None:
    with session_scope(settings.database_url) as session, pytest.raises(InvalidTransitionError):
        transition(session, job_id, JobState.QUEUED, JobState.SUCCEEDED, "skip ahead")
    assert state_of(settings, job_id).state == "queued"
