"""How soon a training job trains, and how fast a queue of short runs drains: the node's fork
server (worker/forkserver/) against the cold path it replaced (GANFORGE_FORK_SERVER=0: a
launcher and then each rank importing torch). Part of `python -m bench.queue`:

    python -m bench.queue --first-step 3 --drain 40

First step: each sample POSTs a 1-rank ring8 run (10 steps, reported at step 10: a few ms of
training) and reads, once it has ended, its `started_at` and the time of its first line in
metrics.jsonl (both stamped on this machine's clock), and likewise a 2-rank gang on one node.
The cold and the forked service run one after the other, twice each (cold, forked, cold,
forked), so a neighbour's load drifting over the run hurts both alike. Goals: first step
within 2 s of `running` (1 device), within 5 s for the 2-rank gang.

Drain: 40 runs of 200 steps (ring8, seeds 0-39), on one worker with two CPU slots: submitted
one by one on the cold path (the service before the fork server), the same on the forked
path, and as one sweep of 40 children on the forked path. The figure is jobs per minute from
the first POST to the last child's end.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from bench.lab import Lab, bench_token, lab_settings, spread
from cli.embedded import ServiceProcesses
from shared.config import Settings

FIRST_STEP_JOB: dict[str, Any] = {
    "model": {"family": "mlp", "width": 16},
    "latent": {"dim": 2},
    "data": {"source": "toy:ring8"},
    "train": {"steps": 10, "batch_size": 16},
    "checkpoint_every": 10,
    "sample_every": 10,
}
DRAIN_CHILD: dict[str, Any] = {
    "model": {"family": "mlp", "width": 32},
    "latent": {"dim": 2},
    "data": {"source": "toy:ring8"},
    "train": {"steps": 200, "batch_size": 64},
    "checkpoint_every": 200,
    "sample_every": 200,
}
GOAL_FIRST_STEP_S = {"1 rank": 2.0, "2 ranks": 5.0}
FINAL = ("succeeded", "failed", "cancelled")
JOB_TIMEOUT_S = 300.0
DRAIN_TIMEOUT_S = 3600.0
NODE_TIMEOUT_S = 60.0


class Service:
    """The API, scheduler and one worker (two CPU slots) on their own database and bucket,
    with the fork server on or off."""

    def __init__(self, settings: Settings, http: requests.Session) -> None:
        self.settings, self.http = settings, http

    def url(self, path: str) -> str:
        return f"{self.settings.api_url}/api/v1{path}"

    def submit(self, kind: str, spec: dict[str, Any], name: str) -> str:
        answer = self.http.post(self.url("/jobs"), json={"kind": kind, "name": name, "spec": spec})
        answer.raise_for_status()
        return str(answer.json()["id"])

    def wait_final(self, job_id: str, timeout_s: float = JOB_TIMEOUT_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job: dict[str, Any] = self.http.get(self.url(f"/jobs/{job_id}"), timeout=30).json()
            if job["state"] in FINAL:
                return job
            time.sleep(0.2)
        raise TimeoutError(f"job {job_id} did not end in {timeout_s:.0f} s")

    def first_report_time(self, job_id: str) -> float:
        series = self.http.get(self.url(f"/jobs/{job_id}/metrics?kind=train"), timeout=30).json()
        return float(series["metrics"][0]["time"])


@contextlib.contextmanager
def service(lab: Lab, fork_server: bool) -> Iterator[Service]:
    with contextlib.ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gf-bench-start-")))
        settings = stack.enter_context(
            lab_settings(
                lab,
                home,
                GANFORGE_NODE_NAME="bench-node",
                GANFORGE_CPU_SLOTS="2",
                GANFORGE_FORK_SERVER="1" if fork_server else "0",
            )
        )
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {bench_token(settings)}"
        processes = stack.enter_context(ServiceProcesses(settings, home / "logs"))
        processes.start()
        processes.wait_ready()
        ours = Service(settings, http)
        _wait_for_node(ours)
        yield ours


def _wait_for_node(ours: Service) -> None:
    deadline = time.monotonic() + NODE_TIMEOUT_S
    while time.monotonic() < deadline:
        nodes = ours.http.get(ours.url("/pool"), timeout=30).json()["nodes"]
        if any(node["state"] == "up" for node in nodes):
            return
        time.sleep(0.2)
    raise TimeoutError(f"no worker node registered in {NODE_TIMEOUT_S:.0f} s")


def first_step_sample(ours: Service, devices: int) -> dict[str, float]:
    """One run on an idle worker: seconds from the POST to `running` and from `running` to
    its first report (step 10)."""
    spec = {**FIRST_STEP_JOB, "resources": {"devices": devices}}
    sent = time.time()
    job_id = ours.submit("train", spec, name=f"first-step-{devices}")
    job = ours.wait_final(job_id)
    if job["state"] != "succeeded":
        raise RuntimeError(f"job {job_id} ended {job['state']}: {job['error']}")
    started = datetime.fromisoformat(job["started_at"]).timestamp()
    first = ours.first_report_time(job_id)
    return {"to_running_s": started - sent, "running_to_first_step_s": first - started}


def measure_first_step(lab: Lab, samples: int) -> dict[str, Any]:
    taken: dict[str, dict[str, list[dict[str, float]]]] = {
        side: {"1 rank": [], "2 ranks": []} for side in ("cold", "forked")
    }
    for fork_server in (False, True, False, True):
        side = "forked" if fork_server else "cold"
        with service(lab, fork_server) as ours:
            first_step_sample(ours, 1)  # warm-up, not counted: first connections, imports
            for sample in range(samples):
                for devices in (1, 2):
                    taken[side][f"{devices} rank{'s' if devices > 1 else ''}"].append(
                        first_step_sample(ours, devices)
                    )
                print(f"  first step: {side} sample {sample + 1} done", flush=True)
    results: dict[str, Any] = {"samples_per_side": 2 * samples}
    for gang, goal in GOAL_FIRST_STEP_S.items():
        figures = {}
        for side in ("cold", "forked"):
            runs = taken[side][gang]
            figures[side] = {
                "running_to_first_step_s": spread([r["running_to_first_step_s"] for r in runs], 2),
                "post_to_first_step_s": spread(
                    [r["to_running_s"] + r["running_to_first_step_s"] for r in runs], 2
                ),
            }
        forked = figures["forked"]["running_to_first_step_s"]["median"]
        figures["goal"] = {"running_to_first_step_s_at_most": goal, "met": forked <= goal}
        results[gang] = figures
    return results


def drain(ours: Service, jobs: int, as_sweep: bool) -> dict[str, Any]:
    """Jobs per minute from the first POST until the last of `jobs` 200-step runs ended."""
    started = time.monotonic()
    if as_sweep:
        sweep = {"base": DRAIN_CHILD, "grid": {"train.seed": list(range(jobs))},
                 "max_parallel": jobs}  # fmt: skip
        ended = ours.wait_final(ours.submit("sweep", sweep, name="drain"), DRAIN_TIMEOUT_S)
        states = [ended["state"]]
    else:
        ids = [
            ours.submit("train", {**DRAIN_CHILD, "train": {**DRAIN_CHILD["train"], "seed": seed}},
                        name=f"drain-{seed}")
            for seed in range(jobs)
        ]  # fmt: skip
        states = [ours.wait_final(job_id, DRAIN_TIMEOUT_S)["state"] for job_id in ids]
    seconds = time.monotonic() - started
    if set(states) != {"succeeded"}:
        raise RuntimeError(f"drain ended with states {sorted(set(states))}")
    return {
        "jobs": jobs,
        "seconds": round(seconds, 1),
        "jobs_per_min": round(60 * jobs / seconds, 2),
    }


def measure_drain(lab: Lab, jobs: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, fork_server, as_sweep in (
        ("one_by_one_cold", False, False),
        ("one_by_one_forked", True, False),
        ("sweep_forked", True, True),
    ):
        with service(lab, fork_server) as ours:
            results[name] = drain(ours, jobs, as_sweep)
        print(f"  drain {name}: {results[name]}", flush=True)
    cold = results["one_by_one_cold"]["jobs_per_min"]
    results["sweep_over_cold"] = round(results["sweep_forked"]["jobs_per_min"] / cold, 2)
    return results


def describe(first_step: dict[str, Any] | None, drained: dict[str, Any] | None) -> str:
    lines = []
    for gang in GOAL_FIRST_STEP_S:
        if first_step is None:
            break
        cold = first_step[gang]["cold"]["running_to_first_step_s"]
        forked = first_step[gang]["forked"]["running_to_first_step_s"]
        lines.append(
            f"running -> first step, {gang}: forked median {forked['median']:.2f} s "
            f"({forked['min']:.2f}-{forked['max']:.2f}), cold {cold['median']:.2f} s "
            f"({cold['min']:.2f}-{cold['max']:.2f}); goal <= {GOAL_FIRST_STEP_S[gang]:.0f} s"
        )
    if drained is not None:
        lines.append(
            "drain of {n} 200-step runs: cold one by one {c} jobs/min, forked one by one {f}, "
            "forked sweep {s} ({r}x cold)".format(
                n=drained["sweep_forked"]["jobs"],
                c=drained["one_by_one_cold"]["jobs_per_min"],
                f=drained["one_by_one_forked"]["jobs_per_min"],
                s=drained["sweep_forked"]["jobs_per_min"],
                r=drained["sweep_over_cold"],
            )
        )
    return "\n".join(lines)
