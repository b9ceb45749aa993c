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
    Move,
    check_transition,
    transition,
    transition_many,
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


def test_transition_many_moves_only_jobs_still_expected_in_their_attempt_each_with_its_event(
    settings: Settings, job_id: str
) -> None:
    with session_scope(settings.database_url) as session:
        owner = session.scalar(select(User).where(User.name == "carol"))
        spec = TrainSpec.model_validate(RING_SPEC)
        second, cancelled, stale = (
            submit_job(session, owner, "train", name, spec, max_attempts=3).id
            for name in ("k", "l", "m")
        )
    with session_scope(settings.database_url) as session:
        assert transition(session, cancelled, JobState.QUEUED, JobState.CANCELLED, "by carol")
    moves = [
        Move(job_id, 1, "placed on n1", {"task_id": "t1", "placement": [{"node": "n1"}]}),
        Move(second, 1, "placed on n2", {"task_id": "t2", "placement": [{"node": "n2"}]}),
        Move(cancelled, 1, "placed on n3", {"task_id": "t3"}),
        Move(stale, 7, "placed on n4", {"task_id": "t4"}),
    ]
    with session_scope(settings.database_url) as session:
        moved = transition_many(
            session, moves, JobState.QUEUED, JobState.SCHEDULED, waiting_reason=None
        )
    assert moved == {job_id, second}
    first_row, second_row = state_of(settings, job_id), state_of(settings, second)
    assert (first_row.state, first_row.task_id, first_row.placement) == (
        "scheduled", "t1", [{"node": "n1"}]
    )  # fmt: skip
    assert (second_row.state, second_row.task_id) == ("scheduled", "t2")
    assert (state_of(settings, cancelled).state, state_of(settings, cancelled).task_id) == (
        "cancelled", None
    )  # fmt: skip
    assert state_of(settings, stale).state == "queued", "another attempt's move changes nothing"
    with session_scope(settings.database_url) as session:
        events = session.execute(
            select(JobEvent.job_id, JobEvent.to_state, JobEvent.attempt, JobEvent.reason).where(
                JobEvent.from_state == "queued"
            )
        ).all()
    assert sorted(events) == sorted(
        [
            (job_id, "scheduled", 1, "placed on n1"),
            (second, "scheduled", 1, "placed on n2"),
            (cancelled, "cancelled", 1, "by carol"),
        ]
    )
