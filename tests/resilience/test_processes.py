"""ganforge's own processes dying: the worker killed twice in a row (the job resumes twice),
the scheduler killed between its commit and its send (the claim timeout requeues the job, which
then runs once), the API killed mid-request (running jobs never notice, nothing half-stored)."""

from __future__ import annotations

import socket
import time
from typing import Any
from urllib.parse import urlparse

from scheduler.placing import commit_placement
from scheduler.process import plan_pass
from tests.helpers import with_steps
from tests.resilience.conftest import FaultLab
from tests.resilience.test_outages import HAPPY_PATH, STEADY_RING

# A few ms a step, a checkpoint every 200 steps to resume from.
QUICK_RING: dict[str, Any] = {
    **STEADY_RING,
    "model": {"family": "mlp", "width": 64},
    "train": {"steps": 1000, "batch_size": 256, "seed": 6},
    "checkpoint_every": 200,
    "sample_every": 1000,
}


def _kill_and_restart_worker(lab: FaultLab) -> float:
    lab.service.processes.kill("worker")
    killed = time.monotonic()
    lab.service.processes.start(("worker",))
    return killed


def test_the_worker_killed_twice_in_a_row_the_job_resumes_twice(
    lab: FaultLab, recovery: Any
) -> None:
    service = lab.service
    job = service.submit("train", QUICK_RING, name="killed-twice")
    waits = []
    # Past a checkpoint of each attempt's own (every 200 steps; attempt 2 resumes from 200
    # or 400): its log lines reach the store with its checkpoints.
    for attempt, past in ((1, 250), (2, 650)):
        service.wait_for(
            job["id"],
            lambda j, a=attempt, s=past: (
                j["attempt"] == a
                and j["state"] == "running"
                and (j["progress"] or {}).get("step", 0) >= s
            ),
        )
        killed = _kill_and_restart_worker(lab)
        service.wait_for(
            job["id"], lambda j, a=attempt: j["attempt"] == a + 1 and j["state"] == "running"
        )
        waits.append(time.monotonic() - killed)
    recovery("worker killed -> its job running again (slowest of 2)", max(waits))

    done = service.wait_final(job["id"], timeout_s=240)
    assert (done["state"], done["attempt"]) == ("succeeded", 3), done["error"]
    assert lab.path(job["id"]) == [
        "queued", "scheduled", "running", "lost",
        "queued", "scheduled", "running", "lost",
        "queued", "scheduled", "running", "succeeded",
    ]  # fmt: skip
    events = service.http.get(service.url(f"/api/v1/jobs/{job['id']}/events")).json()["events"]
    assert [e["reason"] for e in events if e["to"] == "lost"] == ["node fault-node restarted"] * 2
    log = service.download(job["id"], "log.txt").decode()
    assert "[attempt 2] resuming from the checkpoint of step" in log
    assert "[attempt 3] resuming from the checkpoint of step" in log
    lab.assert_nothing_left(job["id"])


def test_the_scheduler_killed_between_commit_and_send_the_job_still_runs_once(
    lab: FaultLab, recovery: Any
) -> None:
    service, settings = lab.service, lab.service.settings
    service.processes.kill("scheduler")
    job = service.submit("train", with_steps(QUICK_RING, 100), name="never-sent")
    # What the scheduler did before it died: the same pass, the same commit, and no send.
    pool, decided = plan_pass(settings)
    (placement,) = [p for p in decided.placements if p.job_id == job["id"]]
    assert commit_placement(settings, pool, placement) is not None
    time.sleep(2)
    assert service.job(job["id"])["state"] == "scheduled", "placed, and no worker was told"

    service.processes.start(("scheduler",))
    restarted = time.monotonic()
    service.wait_for(job["id"], lambda j: j["state"] == "running", timeout_s=120)
    recovery("scheduler restarted -> the unsent job running", time.monotonic() - restarted)

    done = service.wait_final(job["id"])
    assert (done["state"], done["attempt"]) == ("succeeded", 1), done["error"]
    path = lab.path(job["id"])
    assert path == ["queued", "scheduled", "queued", "scheduled", "running", "succeeded"]
    events = service.http.get(service.url(f"/api/v1/jobs/{job['id']}/events")).json()["events"]
    assert "no node started it within 5 s" in events[2]["reason"]
    lab.assert_nothing_left(job["id"])


def test_the_api_killed_mid_upload_leaves_no_dataset_and_running_jobs_never_notice(
    lab: FaultLab, recovery: Any
) -> None:
    service = lab.service
    running = service.submit("train", with_steps(QUICK_RING, 2000), name="api-dies")
    service.wait_for(running["id"], lambda j: j["state"] == "running")
    before = service.http.get(service.url("/api/v1/datasets")).json()["datasets"]

    upload = _start_upload(service.settings.api_url, service.http.headers["Authorization"])
    service.processes.kill("api")  # mid-request: half the body sent, no answer yet
    upload.close()
    killed = time.monotonic()
    service.processes.start(("api",))
    service.processes.wait_ready()
    recovery("API killed -> answering again", time.monotonic() - killed)

    after = service.http.get(service.url("/api/v1/datasets")).json()["datasets"]
    assert after == before, "a half-sent upload stored nothing"
    done = service.wait_final(running["id"])
    assert (done["state"], done["attempt"]) == ("succeeded", 1), done["error"]
    assert lab.path(running["id"]) == HAPPY_PATH
    lab.assert_nothing_left(running["id"])


def _start_upload(api_url: str, authorization: str) -> socket.socket:
    """A multipart upload of a 4 MB file of which only the first 256 KB are sent."""
    url = urlparse(api_url)
    boundary = "ganforge-boundary"
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="name"\r\n\r\nhalf\r\n'
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="half.npz"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    length = len(head) + 4 * 1024 * 1024 + len(f"\r\n--{boundary}--\r\n")
    connection = socket.create_connection((url.hostname, url.port), timeout=10)
    connection.sendall(
        (
            "POST /api/v1/datasets HTTP/1.1\r\n"
            f"Host: {url.netloc}\r\n"
            f"Authorization: {authorization}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {length}\r\n\r\n"
        ).encode()
        + head
        + b"\0" * 256 * 1024
    )
    time.sleep(0.5)  # the API is reading the body
    return connection
