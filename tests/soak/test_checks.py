"""The soak's checks find what they look for: a soak cannot pass because a check is blind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from cli.embedded import ServiceProcesses
from shared.config import Settings
from tests.soak.checks import leftover_processes, leftover_work_folders, path_problems

CREATED = (None, "queued")


def test_a_path_along_the_state_machine_to_one_final_state_passes() -> None:
    path = [CREATED, ("queued", "scheduled"), ("scheduled", "running"), ("running", "cancelling")]
    assert path_problems([*path, ("cancelling", "succeeded")], "succeeded") == []
    requeued = [CREATED, ("queued", "scheduled"), ("scheduled", "queued"), ("queued", "cancelled")]
    assert path_problems(requeued, "cancelled") == []


def test_skipped_edges_broken_chains_second_finals_and_a_wrong_end_are_each_found() -> None:
    done = ("running", "succeeded")
    # queued -> running is a sweep's (it holds no devices); queued -> succeeded is no one's.
    (skipped,) = path_problems([CREATED, ("queued", "succeeded")], "succeeded")
    assert "cannot become succeeded" in skipped
    (broken,) = path_problems([CREATED, ("scheduled", "running"), done], "succeeded")
    assert "after reaching queued" in broken
    twice = path_problems(
        [CREATED, ("queued", "cancelled"), ("cancelled", "cancelled")], "cancelled"
    )
    assert any("2 final events" in problem for problem in twice)
    assert path_problems([CREATED], "succeeded") == [
        "0 final events: []",
        "ends queued but the job is succeeded",
    ]
    assert path_problems([("queued", "scheduled")], "scheduled")[0].startswith("does not start")


def test_a_process_of_ours_outside_the_services_and_a_job_folder_are_found(
    tmp_path: Path,
) -> None:
    settings = Settings.from_env({"GANFORGE_HOME": str(tmp_path)})
    no_services = ServiceProcesses(settings, tmp_path / "logs")
    env = {**os.environ, **settings.to_env()}
    with subprocess.Popen(["sleep", "60"], env=env, start_new_session=True) as orphan:
        try:
            found = leftover_processes(no_services, settings.home)
        finally:
            orphan.kill()
    assert [line.split(":")[0] for line in found] == [str(orphan.pid)]
    job_id = "0123456789abcdef0123456789abcdef"
    (tmp_path / "work" / "node-x" / "01234567-1-abc").mkdir(parents=True)
    (tmp_path / "work" / "node-x" / "fedcba98-1-abc").mkdir()
    assert leftover_work_folders(tmp_path, ["node-x", "node-y"], [job_id]) == [
        str(tmp_path / "work" / "node-x" / "01234567-1-abc")
    ]
