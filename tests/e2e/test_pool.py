"""The pool through real processes: three workers, each a node with two CPU slots, one
scheduler. A node killed outright is found dead and its job resumes on another node; a job no
node can hold is refused; a drained node takes no new work."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import torch

from tests.e2e.conftest import Service, running_service
from tests.helpers import user_token, with_steps
from tests.servers import TestServer

# Three nodes of two CPU slots, and one of four for the one-node run of a four-rank job.
SLOTS = {"node-a": 2, "node-b": 2, "node-c": 2, "node-d": 4}
NODES = tuple(SLOTS)
# Short enough that a test sees a dead node within seconds; five heartbeats fit in it.
NODE_TIMEOUT_S = 6

SLOW_RING: dict[str, Any] = {
    "model": {"family": "mlp", "width": 32},
    "latent": {"dim": 4},
    "data": {"source": "toy:ring8"},
    "train": {"steps": 600, "batch_size": 64, "seed": 5},
    "checkpoint_every": 50,
    "sample_every": 600,
}


@pytest.fixture(scope="module")
def pool_service(
    postgres: TestServer,
    redis_service: TestServer,
    s3_endpoint: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Service]:
    home = tmp_path_factory.mktemp("ganforge-pool")
    env = {"GANFORGE_NODE_TIMEOUT_S": str(NODE_TIMEOUT_S)}
    with running_service(
        postgres, redis_service, s3_endpoint, home, env, processes=("api", "scheduler")
    ) as service:
        for node, slots in SLOTS.items():
            service.processes.start_worker(node, cpu_slots=slots)
        service.wait_until(lambda: {n["name"] for n in service.pool()["nodes"]} == set(NODES))
        yield service


def _node_of(service: Service, job_id: str) -> str:
    placement = service.job(job_id)["placement"]
    assert len(placement) == 1, placement
    return str(placement[0]["node"])


def test_every_node_announces_its_slots_and_the_pool_shows_them(pool_service: Service) -> None:
    nodes = {n["name"]: n for n in pool_service.pool()["nodes"]}
    assert set(nodes) == set(NODES)
    for node in nodes.values():
        assert node["state"] == "up"
        assert [d["index"] for d in node["devices"]] == list(range(SLOTS[node["name"]]))
        assert all(d["kind"] == "cpu" and d["job_id"] is None for d in node["devices"])


def test_a_job_no_node_can_hold_is_refused_at_submission_naming_resources(
    pool_service: Service,
) -> None:
    spec = {**SLOW_RING, "resources": {"devices": 8}}
    response = pool_service.http.post(
        pool_service.url("/api/v1/jobs"), json={"kind": "train", "name": "big", "spec": spec}
    )
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["path"] == "spec.resources"
    assert "the largest fitting node has 4" in error["message"]


def test_a_four_rank_job_across_two_nodes_trains_like_the_same_job_on_one_node(
    pool_service: Service,
) -> None:
    spec = {**SLOW_RING, "train": {"steps": 40, "batch_size": 64, "seed": 11},
            "checkpoint_every": 20, "sample_every": 40}  # fmt: skip
    spread = pool_service.submit("train", {**spec, "resources": {"devices": 4, "nodes": 2}})
    spread = pool_service.wait_final(spread["id"])
    assert spread["state"] == "succeeded", spread["error"]
    reasons = _reasons(pool_service, spread["id"])
    assert ("scheduled", "placed on node-a devices 0,1 + node-b devices 0,1") in reasons
    assert [to for to, _ in reasons].count("running") == 1

    single = pool_service.wait_final(
        pool_service.submit("train", {**spec, "resources": {"devices": 4}})["id"]
    )
    assert single["state"] == "succeeded", single["error"]
    assert ("scheduled", "placed on node-d devices 0,1,2,3") in _reasons(pool_service, single["id"])

    def generator(job_id: str) -> dict[str, torch.Tensor]:
        data = pool_service.download(job_id, "checkpoints/step-000040.pt")
        return torch.load(io.BytesIO(data), weights_only=True)["generator"]  # type: ignore[no-any-return]

    across, alone = generator(spread["id"]), generator(single["id"])
    assert across.keys() == alone.keys()
    assert all(torch.equal(across[name], alone[name]) for name in across)
    assert "x 4 rank(s)" in pool_service.download(spread["id"], "log.txt").decode()


def test_a_node_that_hangs_past_the_timeout_loses_its_job_and_its_zombie_is_stopped(
    pool_service: Service,
) -> None:
    spec = {**SLOW_RING, "model": {"family": "mlp", "width": 256},
            "train": {"steps": 1000, "batch_size": 1024, "seed": 5},
            "checkpoint_every": 100}  # fmt: skip
    job = pool_service.submit("train", spec, name="zombie")
    # A checkpoint first, so the next attempt has one to resume from however slowly the
    # machine runs (waiting on a step count alone raced the first checkpoint under load).
    pool_service.wait_for(
        job["id"],
        lambda j: any(a["kind"] == "checkpoint" for a in pool_service.artifacts(j["id"]).values()),
    )
    node = _node_of(pool_service, job["id"])
    # The worker and its supervisors freeze; the ranks (their own process group) train on.
    pool_service.processes.pause(f"worker-{node}")
    moved = pool_service.wait_for(
        job["id"], lambda j: j["attempt"] == 2 and j["state"] == "running"
    )
    assert _node_of(pool_service, moved["id"]) != node
    pool_service.processes.pause(f"worker-{node}", paused=False)

    done = pool_service.wait_final(job["id"], timeout_s=240)
    assert (done["state"], done["attempt"]) == ("succeeded", 2), done["error"]
    reasons = _reasons(pool_service, job["id"])
    assert ("lost", f"node {node} silent for {NODE_TIMEOUT_S} s") in reasons
    assert [to for to, _ in reasons].count("succeeded") == 1
    pool_service.wait_until(lambda: not _processes_of(job["id"], attempt=1), timeout_s=30)
    log = pool_service.download(job["id"], "log.txt").decode()
    assert "[attempt 2] resuming from the checkpoint of step" in log
    pool_service.wait_until(
        lambda: {n["name"]: n["state"] for n in pool_service.pool()["nodes"]}[node] == "up"
    )


def _processes_of(job_id: str, attempt: int) -> list[int]:
    """Pids of the launchers of an attempt (their ranks share its process group and die with
    it), found by their command line: `... --job-id ID --attempt N ...`."""
    wanted = f"--job-id\0{job_id}\0--attempt\0{attempt}\0".encode()
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if wanted in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_a_killed_worker_is_found_dead_and_its_job_resumes_on_another_node(
    pool_service: Service,
) -> None:
    job = pool_service.submit("train", SLOW_RING, name="survivor")
    pool_service.wait_for(
        job["id"],
        lambda j: any(a["kind"] == "checkpoint" for a in pool_service.artifacts(j["id"]).values()),
    )
    first_node = _node_of(pool_service, job["id"])
    pool_service.processes.kill(f"worker-{first_node}")

    done = pool_service.wait_final(job["id"], timeout_s=240)
    assert done["state"] == "succeeded", done["error"]
    assert done["attempt"] == 2
    events = pool_service.http.get(pool_service.url(f"/api/v1/jobs/{job['id']}/events")).json()
    path = [e["to"] for e in events["events"]]
    assert path == ["queued", "scheduled", "running", "lost", "queued", "scheduled", "running",
                    "succeeded"]  # fmt: skip
    lost = next(e for e in events["events"] if e["to"] == "lost")
    assert lost["reason"] == f"node {first_node} silent for {NODE_TIMEOUT_S} s"
    second_start = [e for e in events["events"] if e["to"] == "running"][1]
    assert first_node not in second_start["reason"]
    log = pool_service.download(job["id"], "log.txt").decode()
    assert "resuming from the checkpoint of step" in log
    dead = {n["name"]: n["state"] for n in pool_service.pool()["nodes"]}[first_node]
    assert dead == "dead"


def test_a_worker_told_to_stop_gives_its_job_back_and_it_resumes_on_another_node(
    pool_service: Service,
) -> None:
    # About 12 ms a step on one thread: still running when the worker is told to stop.
    spec = {**SLOW_RING, "model": {"family": "mlp", "width": 256},
            "train": {"steps": 600, "batch_size": 1024, "seed": 5}}  # fmt: skip
    job = pool_service.submit("train", spec, name="moved")
    pool_service.wait_for(job["id"], lambda j: (j["progress"] or {}).get("step", 0) >= 20)
    node = _node_of(pool_service, job["id"])
    pool_service.processes.stop((f"worker-{node}",))  # SIGTERM, as an operator or k8s does

    done = pool_service.wait_final(job["id"], timeout_s=240)
    assert done["state"] == "succeeded", done["error"]
    assert (done["attempt"], done["max_attempts"]) == (2, 4), "a preemption costs no attempt"
    reasons = _reasons(pool_service, job["id"])
    assert ("preempted", f"worker on {node} stopping") in reasons
    assert [to for to, _ in reasons].count("running") == 2
    assert ("running", f"started on {node}") == next(r for r in reasons if r[0] == "running")
    assert {n["name"]: n["state"] for n in pool_service.pool()["nodes"]}[node] == "stopped"
    log = pool_service.download(job["id"], "log.txt").decode()
    assert "resuming from the checkpoint of step" in log


def test_a_drained_node_takes_no_new_jobs_until_undrained(pool_service: Service) -> None:
    settings = pool_service.settings
    user_route = pool_service.url("/api/v1/admin/nodes/node-c/drain")
    assert pool_service.http.post(user_route).status_code == 403, "admins only"
    admin = requests.Session()
    admin.headers["Authorization"] = f"Bearer {user_token(settings, 'pool-admin', admin=True)}"
    live = [n["name"] for n in pool_service.pool()["nodes"] if n["state"] == "up"]
    for name in live:
        response = admin.post(pool_service.url(f"/api/v1/admin/nodes/{name}/drain"))
        assert response.json() == {"name": name, "state": "draining"}

    job = pool_service.submit("train", with_steps(SLOW_RING, 20), name="drained")
    waiting = pool_service.wait_for(job["id"], lambda j: j["queue"]["waiting_reason"] is not None)
    assert waiting["state"] == "queued"
    assert waiting["queue"]["waiting_reason"] == "every node with 1 device is draining or down"

    admin.post(pool_service.url(f"/api/v1/admin/nodes/{live[-1]}/undrain"))
    done = pool_service.wait_final(job["id"])
    assert done["state"] == "succeeded", done["error"]
    assert ("running", f"started on {live[-1]}") in _reasons(pool_service, job["id"])


def _reasons(service: Service, job_id: str) -> list[tuple[str, str]]:
    events = service.http.get(service.url(f"/api/v1/jobs/{job_id}/events")).json()["events"]
    return [(e["to"], e["reason"]) for e in events]


def test_the_cli_shows_the_pool_and_the_queue(pool_service: Service) -> None:
    token = pool_service.http.headers["Authorization"].removeprefix("Bearer ")
    env = {**os.environ, **pool_service.settings.to_env(), "GANFORGE_TOKEN": token,
           "COLUMNS": "200"}  # fmt: skip
    pool = subprocess.run(
        [sys.executable, "-m", "cli", "pool"], env=env, capture_output=True, text=True
    )
    assert pool.returncode == 0, pool.stderr
    assert all(name in pool.stdout for name in NODES)
    queue = subprocess.run(
        [sys.executable, "-m", "cli", "queue"], env=env, capture_output=True, text=True
    )
    assert queue.returncode == 0, queue.stderr
    assert "waiting for" in queue.stdout
