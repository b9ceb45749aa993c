"""A rank killed outright is the machinery's fault: the attempt is lost and requeued, and the
job resumes from its checkpoint. A job's own error fails it at once, with the reason."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from tests.resilience.conftest import FaultLab
from tests.resilience.test_outages import STEADY_RING


def _rank_pids(job_id: str, attempt: int) -> list[int]:
    """The rank processes of an attempt, by the title each gives itself
    (worker/process_titles.py), whether its launcher was forked or started cold."""
    wanted = f"--job-id {job_id} --attempt {attempt}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            command = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if command.startswith(b"ganforge rank ") and wanted in command:
            pids.append(int(proc.name))
    return pids


def test_a_rank_killed_with_sigkill_loses_the_attempt_and_the_job_resumes(
    lab: FaultLab, recovery: Any
) -> None:
    service = lab.service
    # Small and quick (a few ms a step); a checkpoint every 200 steps to resume from.
    spec = {
        **STEADY_RING,
        "model": {"family": "mlp", "width": 64},
        "train": {"steps": 800, "batch_size": 256, "seed": 4},
        "checkpoint_every": 200,
        "sample_every": 800,
    }
    job = service.submit("train", spec, name="rank-killed")
    service.wait_for(job["id"], lambda j: (j["progress"] or {}).get("step", 0) >= 250)
    (rank,) = _rank_pids(job["id"], attempt=1)
    os.kill(rank, signal.SIGKILL)
    killed = time.monotonic()
    service.wait_for(job["id"], lambda j: j["attempt"] == 2 and j["state"] == "running")
    recovery("rank killed -> the next attempt running", time.monotonic() - killed)

    done = service.wait_final(job["id"], timeout_s=240)
    assert (done["state"], done["attempt"]) == ("succeeded", 2), done["error"]
    events = service.http.get(service.url(f"/api/v1/jobs/{job['id']}/events")).json()["events"]
    lost = next(e for e in events if e["to"] == "lost")
    assert lost["attempt"] == 1 and "a rank process died" in lost["reason"]
    log = service.download(job["id"], "log.txt").decode()
    assert "[attempt 2] resuming from the checkpoint of step" in log


def test_a_jobs_own_error_fails_it_at_once_with_the_reason(lab: FaultLab) -> None:
    spec = {**STEADY_RING, "data": {"source": "npz", "key": "datasets/none-such.npz"}}
    done = lab.service.wait_final(lab.service.submit("train", spec, name="bad-data")["id"])
    assert (done["state"], done["attempt"]) == ("failed", 1)
    assert "none-such.npz" in done["error"]
