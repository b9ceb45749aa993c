"""Preemption through real processes: a preemptible job gives its devices to a higher-priority
one, checkpoints, and resumes from that checkpoint once the devices are free again."""

from __future__ import annotations

import re
from typing import Any

import requests

from tests.e2e.conftest import Service
from tests.helpers import user_token

# Wide and large-batched enough to still be running (about 25 ms a step here, two ranks of one
# thread) when the urgent job arrives, small enough to finish soon after it resumes.
LONG_RING: dict[str, Any] = {
    "model": {"family": "mlp", "width": 256},
    "latent": {"dim": 4},
    "data": {"source": "toy:ring8"},
    "train": {"steps": 600, "batch_size": 1024, "seed": 9},
    "checkpoint_every": 500,
    "sample_every": 600,
    # Both of the node's slots: nothing else fits beside it.
    "resources": {"devices": 2, "preemptible": True},
}
SHORT_RING: dict[str, Any] = {
    **LONG_RING,
    "model": {"family": "mlp", "width": 32},
    "train": {"steps": 20},
    "checkpoint_every": 20,
    "sample_every": 20,
    "resources": {"devices": 1},
}


def test_a_preemptible_job_yields_to_a_higher_priority_one_and_resumes_from_its_checkpoint(
    service: Service,
) -> None:
    low = service.submit("train", LONG_RING, name="preemptible")
    running = service.wait_for(low["id"], lambda j: (j["progress"] or {}).get("step", 0) >= 20)
    assert running["state"] == "running"

    urgent = service.submit("train", SHORT_RING, name="urgent")
    admin = requests.Session()
    admin.headers["Authorization"] = (
        f"Bearer {user_token(service.settings, 'prio-admin', admin=True)}"
    )
    response = admin.post(
        service.url(f"/api/v1/jobs/{urgent['id']}/priority"), json={"priority": 5}
    )
    assert response.status_code == 200 and response.json()["priority"] == 5

    assert service.wait_final(urgent["id"])["state"] == "succeeded"
    done = service.wait_final(low["id"])
    assert done["state"] == "succeeded", done["error"]
    assert done["attempt"] == 2 and done["max_attempts"] == 4, "a preemption costs no attempt"

    events = service.http.get(service.url(f"/api/v1/jobs/{low['id']}/events")).json()["events"]
    assert [e["to"] for e in events] == [
        "queued", "scheduled", "running", "preempted", "queued", "scheduled", "running", "succeeded"
    ]  # fmt: skip
    preempted = next(e for e in events if e["to"] == "preempted")
    assert preempted["reason"] == f"preempted for job {urgent['id']} (priority 5)"

    log = service.download(low["id"], "log.txt").decode()
    resumed_at = int(re.search(r"resuming from the checkpoint of step (\d+)", log).group(1))  # type: ignore[union-attr]
    checkpoints = sorted(
        a["step"] for a in service.artifacts(low["id"]).values() if a["kind"] == "checkpoint"
    )
    # The stop saved a checkpoint at the step it reached (not the last periodic one, every
    # 500): nothing is redone.
    assert resumed_at in checkpoints and resumed_at % 500 != 0 and resumed_at >= 20


def test_an_owner_may_lower_but_not_raise_a_priority(service: Service) -> None:
    job = service.submit("train", SHORT_RING, name="modest")
    url = service.url(f"/api/v1/jobs/{job['id']}/priority")
    assert service.http.post(url, json={"priority": -3}).json()["priority"] == -3
    raised = service.http.post(url, json={"priority": 2})
    assert raised.status_code == 403
    assert raised.headers["Content-Type"] == "application/problem+json"
    assert service.http.post(url, json={"priority": "high"}).status_code == 422
    assert service.wait_final(job["id"])["state"] == "succeeded"
