"""A researcher's own training loop (a `script` job) through the real service: pushed over
HTTP, placed by the scheduler, preempted by it for a higher-priority job, resumed by the
worker from the checkpoint the loop saved as it stopped (no step done twice), then sampled.

tests/unit/test_script_jobs.py does the same preemption by hand through `supervise`; this is
the path a user's job takes: the scheduler's own decision, the worker's requeue, the API's
events, artifacts and log."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import requests
from PIL import Image

from tests.e2e.conftest import Service
from tests.e2e.test_byo import push
from tests.e2e.test_preemption import SHORT_RING
from tests.helpers import user_token

LOOP = Path(__file__).resolve().parents[2] / "examples" / "byo" / "script" / "ringloop"
STEPS = 60
# The first checkpoint is at step 10; the test preempts once progress is past it.
CHECKPOINT_EVERY = 10
PREEMPT_AFTER = CHECKPOINT_EVERY + 2


def script_spec(code: str) -> dict[str, Any]:
    """Tiny, but slowed to 0.1 s a step so the preemption lands well before the last step
    (several seconds of margin over the scheduler's and the supervisor's polls), on both of
    the node's slots so that the urgent job can only run on its devices."""
    return {
        "code": code,
        "entrypoint": "ringloop.train:main",
        "args": {"steps": STEPS, "batch_size": 32, "width": 16,
                 "checkpoint_every": CHECKPOINT_EVERY, "seconds_per_step": 0.1},
        "steps": STEPS,
        "resources": {"devices": 2, "preemptible": True},
    }  # fmt: skip


def raise_priority(service: Service, job_id: str, priority: int) -> None:
    """Raise a job's priority as an admin must (an owner may only lower it)."""
    admin = requests.Session()
    admin.headers["Authorization"] = (
        f"Bearer {user_token(service.settings, 'script-prio-admin', admin=True)}"
    )
    response = admin.post(
        service.url(f"/api/v1/jobs/{job_id}/priority"), json={"priority": priority}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.json()["priority"] == priority


def test_a_script_job_is_preempted_by_the_scheduler_and_resumes_with_nothing_redone(
    service: Service,
) -> None:
    code = push(service, LOOP)
    low = service.submit("script", script_spec(code), name="byo-script")
    running = service.wait_for(
        low["id"], lambda j: (j["progress"] or {}).get("step", 0) >= PREEMPT_AFTER
    )
    assert running["state"] == "running" and running["attempt"] == 1

    urgent = service.submit("train", SHORT_RING, name="urgent-over-script")
    raise_priority(service, urgent["id"], 5)
    assert service.wait_final(urgent["id"])["state"] == "succeeded"
    done = service.wait_final(low["id"])
    assert done["state"] == "succeeded", done["error"]
    assert done["attempt"] == 2, "the preempted attempt is followed by exactly one more"

    events = service.http.get(service.url(f"/api/v1/jobs/{low['id']}/events"), timeout=30)
    assert [e["to"] for e in events.json()["events"]] == [
        "queued", "scheduled", "running", "preempted", "queued", "scheduled", "running", "succeeded"
    ]  # fmt: skip

    # The loop logs where it stopped, and the next attempt where it went on: the same step.
    log = service.download(low["id"], "log.txt").decode()
    stopped = re.search(r"stopping at step (\d+) as asked", log)
    assert stopped is not None, log
    stopped_at = int(stopped.group(1))
    assert PREEMPT_AFTER <= stopped_at < STEPS
    assert f"resumed at step {stopped_at}" in log, log
    artifacts = service.artifacts(low["id"])
    checkpoints = {a["step"] for a in artifacts.values() if a["kind"] == "checkpoint"}
    assert stopped_at in checkpoints, checkpoints

    # Every step reported once, in order, to the last: nothing redone, nothing skipped.
    metrics = service.download(low["id"], "metrics.jsonl").decode()
    steps = [json.loads(line)["step"] for line in metrics.splitlines() if line]
    assert steps == list(range(1, STEPS + 1))

    assert service.download(low["id"], "files/final-step.txt") == str(STEPS).encode()
    # The log endpoint (what `ganforge logs` reads) has the same lines.
    lines = service.http.get(service.url(f"/api/v1/jobs/{low['id']}/logs"), timeout=30)
    assert lines.status_code == 200, lines.text
    assert any(f"resumed at step {stopped_at}" in line for line in lines.json()["lines"])

    # The generator the loop saved samples as a built-in job's does.
    sampling = service.submit("sample", {"job_id": low["id"], "seeds": [0, 1, 2]})
    sampled = service.wait_final(sampling["id"])
    assert sampled["state"] == "succeeded", sampled["error"]
    grid = Image.open(io.BytesIO(service.download(sampling["id"], "grid.png")))
    assert grid.format == "PNG" and grid.width > 0
