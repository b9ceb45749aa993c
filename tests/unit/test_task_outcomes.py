"""How the Celery task records an attempt's outcome: every `RunOutcome` status the supervisor
can return (succeeded, failed, cancelled, lost, fenced), against every state the job can be in
when its attempt ends (running, asked to cancel, asked to give way, on its last attempt, moved
on to another attempt, a gang member other than the rendezvous node).

The mapping (`worker.tasks.finish`, guarded by `_run_job` for a fenced attempt) is made of
compare-and-set transitions, so it is run against the unit suite's SQLite database: each case
ends one attempt through the task's body and checks the exact events written (from, to,
attempt, reason) and the job's row afterwards.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import pytest
from sqlalchemy import select

from shared.config import Settings
from shared.db import session_scope
from shared.models import Job, JobEvent
from shared.pool.preemption import request_preemption
from shared.pool.reservations import NodeShare
from tests.unit.job_factories import S, move, running_job
from worker.supervisor import RunOutcome


@pytest.fixture(scope="module")
def tasks(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """worker.tasks. Importing it builds the worker's Celery app from the environment (the
    file-system broker's folder included), so it is imported under a throwaway home."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("GANFORGE_")]:
            patch.delenv(name)
        patch.setenv("GANFORGE_HOME", str(tmp_path_factory.mktemp("worker-home")))
        return importlib.import_module("worker.tasks")


PREEMPT_REASON = "priority 5 job needs its devices"
TRACEBACK = "Traceback (most recent call last):\nValueError: a batch of the wrong shape"
GRACE_KILL = "killed after the cancel grace period"  # what the supervisor reports then
OOM_KILL = "the job's processes exited with code -9: "
FENCED = "the job moved on to another attempt"


# The states an attempt can end in. Each returns the job and the attempt the outcome is for.
def running(settings: Settings) -> tuple[str, int]:
    return running_job(settings), 1


def cancelling(settings: Settings) -> tuple[str, int]:
    job_id = running_job(settings)
    move(settings, job_id, S.RUNNING, S.CANCELLING, reason="cancel requested")
    return job_id, 1


def preempting(settings: Settings) -> tuple[str, int]:
    job_id = running_job(settings)
    with session_scope(settings.database_url) as session:
        request_preemption(session, [job_id], PREEMPT_REASON)
    return job_id, 1


def preempting_then_cancelling(settings: Settings) -> tuple[str, int]:
    job_id, attempt = preempting(settings)
    move(settings, job_id, S.RUNNING, S.CANCELLING, reason="cancel requested")
    return job_id, attempt


def lost_before(times: int) -> Callable[[Settings], tuple[str, int]]:
    """Running in attempt `times + 1` of 3, after `times` attempts lost and requeued."""

    def setup(settings: Settings) -> tuple[str, int]:
        job_id = running_job(settings)
        for _ in range(times):
            move(settings, job_id, S.RUNNING, S.LOST, S.QUEUED, S.SCHEDULED, S.RUNNING)
        return job_id, times + 1

    return setup


def last_attempt_preempting(settings: Settings) -> tuple[str, int]:
    job_id, attempt = lost_before(2)(settings)
    with session_scope(settings.database_url) as session:
        request_preemption(session, [job_id], PREEMPT_REASON)
    return job_id, attempt


def moved_on(settings: Settings) -> tuple[str, int]:
    """Attempt 1 was declared lost and the job requeued in attempt 2; attempt 1 ends late."""
    job_id = running_job(settings)
    move(settings, job_id, S.RUNNING, S.LOST, S.QUEUED)
    return job_id, 1


@dataclass(frozen=True)
class Row:
    state: str
    attempt: int = 1
    max_attempts: int = 3
    error: str | None = None
    preempt_reason: str | None = None


@dataclass(frozen=True)
class Case:
    outcome: RunOutcome
    setup: Callable[[Settings], tuple[str, int]]
    events: list[tuple[str, str, int, str]]  # written by the end of the attempt, in order
    row: Row
    node_rank: int = 0
    id: str = ""


CASES = [
    # succeeded: the rendezvous node records it, whatever was asked meanwhile.
    Case(
        RunOutcome("succeeded"),
        running,
        [("running", "succeeded", 1, "finished")],
        Row("succeeded"),
        id="succeeded-running",
    ),
    Case(
        RunOutcome("succeeded"),
        cancelling,
        [("cancelling", "succeeded", 1, "finished")],
        Row("succeeded"),
        id="succeeded-before-it-saw-the-cancel",
    ),
    Case(
        RunOutcome("succeeded"),
        preempting,
        [("running", "succeeded", 1, "finished")],
        Row("succeeded", preempt_reason=PREEMPT_REASON),
        id="succeeded-before-it-saw-the-preemption",
    ),
    Case(
        RunOutcome("succeeded"),
        running,
        [],
        Row("running"),
        node_rank=1,
        id="succeeded-on-a-gang-member-records-nothing",
    ),
    Case(
        RunOutcome("succeeded"),
        moved_on,
        [],
        Row("queued", attempt=2),
        id="succeeded-after-the-job-moved-on",
    ),
    # failed: the error is the reason and the job's error; a cancel turns it into cancelled.
    Case(
        RunOutcome("failed", TRACEBACK),
        running,
        [("running", "failed", 1, TRACEBACK)],
        Row("failed", error=TRACEBACK),
        id="failed-running",
    ),
    Case(
        RunOutcome("failed"),
        running,
        [("running", "failed", 1, "stopped without a cancel request")],
        Row("failed", error="stopped without a cancel request"),
        id="failed-without-a-word",
    ),
    Case(
        RunOutcome("failed", TRACEBACK),
        running,
        [("running", "failed", 1, TRACEBACK)],
        Row("failed", error=TRACEBACK),
        node_rank=1,
        id="failed-on-a-gang-member",
    ),
    Case(
        RunOutcome("failed", TRACEBACK),
        cancelling,
        [("cancelling", "cancelled", 1, "stopped on request")],
        Row("cancelled"),
        id="failed-while-cancelling",
    ),
    Case(
        RunOutcome("failed", TRACEBACK),
        preempting,
        [("running", "failed", 1, TRACEBACK)],
        Row("failed", error=TRACEBACK, preempt_reason=PREEMPT_REASON),
        id="failed-while-preempting-is-a-failure",
    ),
    # cancelled: asked to cancel -> cancelled; asked to give way -> preempted and requeued with
    # one more attempt in its budget; asked nothing -> failed.
    Case(
        RunOutcome("cancelled", GRACE_KILL),
        cancelling,
        [("cancelling", "cancelled", 1, "stopped on request")],
        Row("cancelled"),
        id="cancelled-on-request",
    ),
    Case(
        RunOutcome("cancelled"),
        preempting,
        [
            ("running", "preempted", 1, PREEMPT_REASON),
            ("preempted", "queued", 2, "requeued after preemption; resumes from its checkpoint"),
        ],
        Row("queued", attempt=2, max_attempts=4),
        id="cancelled-for-a-preemption",
    ),
    Case(
        RunOutcome("cancelled"),
        last_attempt_preempting,
        [
            ("running", "preempted", 3, PREEMPT_REASON),
            ("preempted", "queued", 4, "requeued after preemption; resumes from its checkpoint"),
        ],
        Row("queued", attempt=4, max_attempts=4),
        id="cancelled-for-a-preemption-on-the-last-attempt",
    ),
    Case(
        RunOutcome("cancelled", GRACE_KILL),
        preempting_then_cancelling,
        [("cancelling", "cancelled", 1, "stopped on request")],
        Row("cancelled", preempt_reason=PREEMPT_REASON),
        id="cancelled-the-cancel-wins-over-the-preemption",
    ),
    Case(
        RunOutcome("cancelled", GRACE_KILL),
        running,
        [("running", "failed", 1, GRACE_KILL)],
        Row("failed", error=GRACE_KILL),
        id="cancelled-unasked-is-a-failure",
    ),
    # lost: requeued while attempts remain, failed once they are spent, cancelled if asked.
    Case(
        RunOutcome("lost", OOM_KILL),
        running,
        [("running", "lost", 1, OOM_KILL), ("lost", "queued", 2, "requeued after loss")],
        Row("queued", attempt=2),
        id="lost-attempt-1-of-3-requeued",
    ),
    Case(
        RunOutcome("lost", OOM_KILL),
        lost_before(1),
        [("running", "lost", 2, OOM_KILL), ("lost", "queued", 3, "requeued after loss")],
        Row("queued", attempt=3),
        id="lost-attempt-2-of-3-requeued",
    ),
    Case(
        RunOutcome("lost", OOM_KILL),
        lost_before(2),
        [
            ("running", "lost", 3, OOM_KILL),
            ("lost", "failed", 3, "lost 3 times; no attempts left"),
        ],
        Row("failed", attempt=3, error="lost 3 times; no attempts left"),
        id="lost-attempt-3-of-3-failed",
    ),
    Case(
        RunOutcome("lost", OOM_KILL),
        cancelling,
        [("cancelling", "cancelled", 1, OOM_KILL)],
        Row("cancelled"),
        id="lost-while-cancelling",
    ),
    Case(
        RunOutcome("lost", OOM_KILL),
        moved_on,
        [],
        Row("queued", attempt=2),
        id="lost-after-the-job-moved-on",
    ),
    # fenced: the attempt records nothing, even where the row would still take a change.
    Case(RunOutcome("fenced", FENCED), running, [], Row("running"), id="fenced-running"),
    Case(RunOutcome("fenced", FENCED), cancelling, [], Row("cancelling"), id="fenced-cancelling"),
]


def test_the_cases_cover_every_outcome_the_supervisor_returns() -> None:
    assert {case.outcome.status for case in CASES} == {
        "succeeded",
        "failed",
        "cancelled",
        "lost",
        "fenced",
    }


def events_of(settings: Settings, job_id: str) -> list[tuple[str, str, int, str]]:
    with session_scope(settings.database_url) as session:
        events = session.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
        )
        return [(e.from_state or "", e.to_state, e.attempt, e.reason) for e in events]


def row_of(settings: Settings, job_id: str) -> Row:
    with session_scope(settings.database_url) as session:
        job = session.get_one(Job, job_id)
        return Row(job.state, job.attempt, job.max_attempts, job.error, job.preempt_reason)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_an_attempts_outcome_moves_the_job_to_its_next_state(
    case: Case, tasks: ModuleType, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, attempt = case.setup(settings)
    before = events_of(settings, job_id)
    share = NodeShare(node_rank=case.node_rank, nodes=case.node_rank + 1, devices=[0])
    woken: list[str] = []
    monkeypatch.setattr(tasks, "settings", settings)
    monkeypatch.setattr(tasks, "claim", lambda job_id, attempt: share)
    monkeypatch.setattr(tasks, "run", lambda job_id, attempt, share: case.outcome)
    monkeypatch.setattr(tasks, "wake_scheduler", lambda settings, reason: woken.append(reason))

    assert tasks._run_job(job_id, attempt) == case.outcome.status

    assert events_of(settings, job_id)[len(before) :] == case.events
    assert row_of(settings, job_id) == case.row
    assert woken == ["job ended"]  # the attempt's devices are free, whatever it recorded


def test_a_duplicate_message_runs_and_records_nothing(
    tasks: ModuleType, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = running_job(settings)
    before = events_of(settings, job_id)
    monkeypatch.setattr(tasks, "settings", settings)
    monkeypatch.setattr(tasks, "claim", lambda job_id, attempt: None)

    def run(job_id: str, attempt: int, share: NodeShare) -> RunOutcome:
        raise AssertionError("a duplicate message must not run the job")

    monkeypatch.setattr(tasks, "run", run)

    assert tasks._run_job(job_id, 1) == "duplicate"
    assert events_of(settings, job_id) == before
    assert row_of(settings, job_id) == Row("running")
