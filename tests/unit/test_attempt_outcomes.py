"""How the supervisor turns what an attempt's agent heard (the ranks' or the launcher's result,
a rank's failure, a protocol violation) and how its processes exited into the outcome that
the task then records (tests/unit/test_task_outcomes.py)."""

from __future__ import annotations

import pytest

from tests.unit.test_task_outcomes import GRACE_KILL, TRACEBACK
from worker.supervisor import RunOutcome, attempt_outcome


def outcome_of(
    returncode: int,
    *,
    killed: bool = False,
    violation: str | None = None,
    result: tuple[str, str] | None = None,
    failure: tuple[str, bool] | None = None,
    output: str = "",
) -> RunOutcome:
    return attempt_outcome(
        returncode,
        killed=killed,
        violation=violation,
        result=result,
        failure=failure,
        output=output.splitlines()[-20:],
    )


def test_a_launcher_killed_after_the_grace_period_was_cancelled() -> None:
    assert outcome_of(-9, killed=True, result=("succeeded", "")) == RunOutcome(
        "cancelled", GRACE_KILL
    )


@pytest.mark.parametrize("result", [("succeeded", ""), ("failed", TRACEBACK), ("cancelled", "")])
def test_the_reported_result_is_the_outcome(result: tuple[str, str]) -> None:
    assert outcome_of(0, result=result, output="ignored\n") == RunOutcome(*result)


@pytest.mark.parametrize("lost", [False, True])
def test_a_rank_failure_names_the_rank_and_any_machinery_fault_loses_the_attempt(
    lost: bool,
) -> None:
    failure = ("spec.data.path: nothing there", lost)
    outcome = outcome_of(1, result=("rank_failed", "ProcessRaisedException"), failure=failure)
    assert outcome == RunOutcome("lost" if lost else "failed", "spec.data.path: nothing there")


def test_a_process_that_breaks_the_agents_protocol_fails_the_job_saying_how() -> None:
    outcome = outcome_of(
        -9, violation="FrameError: a header frame of 9,999,999 bytes", result=("succeeded", "")
    )
    assert outcome.status == "failed"
    assert "cut off by the node agent: FrameError: a header frame" in outcome.error


def test_a_launcher_killed_by_a_signal_without_a_word_was_lost() -> None:
    assert outcome_of(-9, output="step 1\nstep 2\n") == RunOutcome(
        "lost", "the job's processes exited with code -9: step 1\nstep 2"
    )


def test_a_launcher_that_exits_without_a_word_failed() -> None:
    lines = [f"line {n}" for n in range(30)]
    assert outcome_of(1, output="\n".join(lines) + "\n") == RunOutcome(
        "failed", "the job's processes exited with code 1: " + "\n".join(lines[-20:])
    )
