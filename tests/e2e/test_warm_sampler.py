"""Sampling on the warm sampler, through the real service: the same bytes as the cold path and
across a worker restart, cancel, a killed sampler, and dispatch by wake-up, not by poll.

One service for the module: node `warm-node` (the warm sampler, the default) and node
`cold-node` (GANFORGE_WARM_SAMPLER=0), chosen per job by a label. Its scheduler polls once a
minute, so every job placed within seconds was placed by a wake-up.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Service, running_service
from tests.helpers import MNIST_DIR
from tests.servers import TestServer

POLL_S = 60.0
# A placement by wake-up takes milliseconds; this bound is generous for a loaded machine and
# still well inside one poll.
PLACED_WITHIN_S = POLL_S / 2
# A 10,000-image grid takes seconds to draw: long enough to cancel it midway.
LONG_JOB_SEEDS = list(range(10_000))
# A killed job is drawn again from the start: 4,000 images still take seconds (about 5 on an
# idle core, 15 on a loaded one) after its log says it began, and keep the test under a minute.
KILLED_JOB_SEEDS = list(range(4_000))
# The sampler is killed this long after a cancel reaches it: seconds before the long job could
# finish, so the kill, not a race with the job's end, is what the cancel test sees.
CANCEL_GRACE_S = 1.0


def small_spec(source: str) -> dict[str, Any]:
    """A few seeds, some repeated: every image's bytes depend on its seed alone."""
    return {"job_id": source, "seeds": [7, 3, 11, 3, 0, 42]}


@pytest.fixture(scope="module")
def warm(
    postgres: TestServer,
    redis_service: TestServer,
    s3_endpoint: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Service]:
    env = {
        "GANFORGE_NODE_NAME": "warm-node",
        "GANFORGE_CPU_SLOTS": "1",
        "GANFORGE_NODE_LABELS": "path=warm",
        "GANFORGE_SCHEDULER_POLL_S": str(POLL_S),
        # Sampling never stops by itself: a cancel kills the sampler after this grace, far
        # shorter than the seconds a long job draws for once it has logged that it began.
        "GANFORGE_CANCEL_GRACE_S": str(CANCEL_GRACE_S),
        # The job's log shows up within this long: the tests act once sampling has begun.
        "GANFORGE_LOG_FLUSH_S": "0.2",
    }
    home = tmp_path_factory.mktemp("warm-home")
    with running_service(postgres, redis_service, s3_endpoint, home, env) as service:
        service.processes.start_worker("cold-node", 1, node_labels="path=cold", warm_sampler=False)
        nodes = {"warm-node", "cold-node"}
        service.wait_until(lambda: {n["name"] for n in service.pool()["nodes"]} == nodes)
        yield service


@pytest.fixture(scope="module")
def source(warm: Service) -> str:
    """A trained DCGAN (one step is enough to sample from), wide enough to take seconds for
    10,000 images. Its digits are resized to 32 px: a run's evaluation trains a digit
    classifier only for 28 px MNIST (a minute and a half here), and these tests need none."""
    spec = {
        "model": {"family": "dcgan", "width": 64},
        "latent": {"dim": 32},
        "data": {"source": "mnist", "path": str(MNIST_DIR), "resize": 32},
        "train": {"steps": 1, "batch_size": 8, "seed": 3},
        "checkpoint_every": 1,
        "sample_every": 1,
        "resources": {"labels": {"path": "cold"}},
    }
    job = warm.wait_final(warm.submit("train", spec, name="source")["id"])
    assert job["state"] == "succeeded", job["error"]
    return str(job["id"])


def sample(service: Service, spec: dict[str, Any], path: str) -> dict[str, Any]:
    """Submit a sampling job for node `path` (warm or cold); it must be placed at once."""
    job = service.submit("sample", {**spec, "resources": {"labels": {"path": path}}}, name=path)
    service.wait_for(job["id"], lambda j: j["state"] != "queued", timeout_s=PLACED_WITHIN_S)
    return job


def finished(service: Service, job: dict[str, Any]) -> dict[str, Any]:
    done = service.wait_final(job["id"], timeout_s=120)
    assert done["state"] == "succeeded", done["error"]
    return done


def ran_warm(service: Service, job_id: str) -> bool:
    return f"job {job_id} attempt 1 ran on the warm sampler" in service.worker_log()


def sampler_pid(service: Service) -> int | None:
    """The warm node's sampler: the child of its worker's main process running it (None
    between the death of one and the start of the next)."""
    worker = service.processes.processes["worker"].pid
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == worker and b"worker.warm.process" in command:
            return int(entry.name)
    return None


def sampling_began(service: Service, job_id: str, images: int) -> bool:
    """The job's sampler is drawing: its log says so (the line before the drawing starts)."""
    response = service.http.get(service.url(f"/api/v1/jobs/{job_id}/logs"), timeout=30)
    return response.status_code == 200 and any(
        f"sampling {images} images" in line for line in response.json()["lines"]
    )


def same_outputs(service: Service, jobs: list[str]) -> None:
    for name in ("grid.png", "latents.npy"):
        outputs = {service.download(job, name) for job in jobs}
        assert len(outputs) == 1, f"{name} differs between the jobs' runs"


def test_seeds_give_identical_bytes_warm_and_cold(warm: Service, source: str) -> None:
    first = sample(warm, small_spec(source), "warm")  # the first use: the checkpoint is downloaded
    finished(warm, first)
    second = finished(warm, sample(warm, small_spec(source), "warm"))  # from the cache
    cold = finished(warm, sample(warm, small_spec(source), "cold"))
    jobs = [first["id"], second["id"], cold["id"]]
    assert [ran_warm(warm, job) for job in jobs] == [True, True, False]
    same_outputs(warm, jobs)
    log = warm.download(second["id"], "log.txt").decode()
    assert f"sampling 6 images from step 1 of {source}" in log
    assert warm.events(second["id"])[-2:] == [("scheduled", "running"), ("running", "succeeded")]
    assert {"grid.png", "latents.npy", "log.txt", "metrics.jsonl"} <= set(
        warm.artifacts(second["id"])
    )


def test_a_restarted_workers_sampler_gives_the_same_bytes(warm: Service, source: str) -> None:
    before = finished(warm, sample(warm, small_spec(source), "warm"))
    warm.processes.stop(("worker",))
    warm.processes.start(("worker",))
    after = finished(warm, sample(warm, small_spec(source), "warm"))
    assert ran_warm(warm, before["id"]) and ran_warm(warm, after["id"])
    same_outputs(warm, [before["id"], after["id"]])


def test_cancel_of_a_warm_job_kills_its_sampler_which_is_replaced(
    warm: Service, source: str
) -> None:
    before = sampler_pid(warm)
    assert before is not None
    job = sample(warm, {"job_id": source, "seeds": LONG_JOB_SEEDS}, "warm")
    warm.wait_until(lambda: sampling_began(warm, job["id"], len(LONG_JOB_SEEDS)))
    response = warm.http.post(warm.url(f"/api/v1/jobs/{job['id']}/cancel"), timeout=30)
    assert response.status_code == 202
    done = warm.wait_final(job["id"], timeout_s=60)
    assert done["state"] == "cancelled"
    assert warm.events(job["id"])[-2:] == [("running", "cancelling"), ("cancelling", "cancelled")]
    assert "grid.png" not in warm.artifacts(job["id"])
    assert f"job {job['id']} did not stop within the grace period" in warm.worker_log()
    warm.wait_until(lambda: sampler_pid(warm) not in (None, before), timeout_s=60)
    again = finished(warm, sample(warm, {"job_id": source, "seeds": [1]}, "warm"))
    assert ran_warm(warm, again["id"])


def test_a_killed_sampler_loses_the_attempt_and_the_job_is_retried(
    warm: Service, source: str
) -> None:
    job = sample(warm, {"job_id": source, "seeds": KILLED_JOB_SEEDS}, "warm")
    warm.wait_until(lambda: sampling_began(warm, job["id"], len(KILLED_JOB_SEEDS)))
    pid = sampler_pid(warm)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    done = finished(warm, job)
    assert done["attempt"] == 2
    assert ("running", "lost") in warm.events(job["id"])
    assert "grid.png" in warm.artifacts(job["id"])
