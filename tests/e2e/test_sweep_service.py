"""A sweep through real processes: the API expands it, the scheduler runs two children at a
time and halves them at a rung, the worker stops the losers cooperatively and keeps their
checkpoints, and the sweep ends succeeded once every child is final."""

from __future__ import annotations

import time
from typing import Any

from tests.e2e.conftest import FINAL, Service

# Wide and large-batched enough that the steps between the rung's evaluation (step 20) and the
# stop checks after it (every 10 steps: 30, 40, 50) outlast a scheduler pass and the
# supervisor's look at the job (half a second each) even on a fast machine; 60 steps keep
# each child to seconds. A checkpoint only at the last step: a stopped child's checkpoint is
# the one its stop saved.
CHILD: dict[str, Any] = {
    "model": {"family": "mlp", "width": 256},
    "latent": {"dim": 4},
    "data": {"source": "toy:ring8"},
    "train": {"steps": 60, "batch_size": 1024, "lr": 1e-3},
    "checkpoint_every": 60,
    "sample_every": 60,
    "eval_every": 20,
}
SWEEP: dict[str, Any] = {
    "base": CHILD,
    "grid": {"loss.name": ["non_saturating", "hinge"], "train.seed": [0, 1, 2]},
    "max_parallel": 2,
    "stop": {"halving": {"figure": "high_quality", "rungs": [20], "keep": 0.5}},
}


def test_a_sweep_halves_its_children_and_ends_with_them(service: Service) -> None:
    sweep = service.submit("sweep", SWEEP, name="halving")
    assert sweep["children"]["total"] == 6
    ids = sweep["children"]["ids"]
    most_active = 0

    def all_final() -> bool:
        nonlocal most_active
        shown = service.job(sweep["id"])
        most_active = max(most_active, shown["children"]["active"])
        return shown["state"] in FINAL

    started = time.monotonic()
    service.wait_until(all_final, timeout_s=240)
    done = service.job(sweep["id"])
    assert done["state"] == "succeeded", done
    assert done["children"]["active"] == 0
    assert set(done["children"]["states"]) <= set(FINAL)
    assert most_active <= 2, "max_parallel 2"

    listed = service.http.get(service.url(f"/api/v1/jobs?parent={sweep['id']}"), timeout=30)
    children = {job["id"]: job for job in listed.json()["jobs"]}
    assert set(children) == set(ids)
    prefix = f"stopped by sweep {sweep['id']} at rung 20: high_quality "
    stopped = [job for job in children.values() if job["state"] == "cancelled"]
    assert stopped, f"no child was stopped: {[(j['name'], j['state']) for j in children.values()]}"
    for job in stopped:
        assert (job["error"] or "").startswith(prefix), job["error"]
        events = service.http.get(service.url(f"/api/v1/jobs/{job['id']}/events"), timeout=30)
        reasons = [e["reason"] for e in events.json()["events"] if e["to"] == "cancelling"]
        assert reasons and reasons[0].startswith(prefix)
        checkpoints = [
            a for a in service.artifacts(job["id"]).values() if a["kind"] == "checkpoint"
        ]
        assert checkpoints, f"{job['name']} kept no checkpoint"
        assert all(20 < a["step"] < 60 for a in checkpoints), "saved by the stop"
    kept = [job for job in children.values() if job["state"] == "succeeded"]
    assert kept and all(job["error"] is None for job in kept)
    assert len(stopped) + len(kept) == 6
    judged = done["progress"]["rungs"]["20"]
    assert {job["id"] for job in stopped} <= set(judged)
    print(f"sweep of 6 in {time.monotonic() - started:.0f} s: {len(stopped)} stopped")
