"""From POST to `running` on an idle worker, against a raw Celery round trip on the same Redis.

    python -m bench.queue [--samples 5] [--first-step 3] [--drain 40] [--json bench-queue.json]

With --first-step and --drain it also times how soon a job trains and how fast a queue of
short runs drains, with the node's fork server and without (bench/job_start.py).

ganforge side: the API (gunicorn), the scheduler and one Celery worker (one CPU slot) as real
processes on PostgreSQL, Redis and moto S3 started for the run. Each sample POSTs a tiny
training job, cancels it once it runs, and reads, once it has ended, its `started_at` (written
by the worker in the transaction that moves it to `running`, on this machine's clock); the
figure is that minus the moment the POST was sent. The worker is idle at each POST (the
previous job has ended).

Raw side: bench/raw_celery.py, a plain Celery app and worker (prefork, one process, acks late,
prefetch 1: ganforge's worker settings) on the same Redis; a sample sends a trivial task and
reads the time the worker started it. Samples alternate raw and ganforge. Goal: ganforge's
median <= the raw median + 100 ms (what ganforge adds: the API's checks and commit, waking
the scheduler, a pass, its reservation and the worker's claim).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
import requests
from celery import Celery

from bench import job_start
from bench.lab import Lab, bench_token, given_or_own_lab, lab_settings, median, spread, write_json
from cli.embedded import ServiceProcesses

GOAL_EXTRA_MS = 100.0
# A job that starts, trains a few steps and ends in seconds, so the next sample finds the
# worker idle again soon.
TINY_JOB: dict[str, Any] = {
    "kind": "train",
    "name": "bench-queue",
    "spec": job_start.FIRST_STEP_JOB,
}
FINAL = ("succeeded", "failed", "cancelled")
# Bounds on waits that normally take seconds: a job's whole run, a raw task's start.
JOB_TIMEOUT_S = 180.0
TASK_TIMEOUT_S = 30.0
NODE_TIMEOUT_S = 60.0


class RawCelery:
    """The raw side: a Celery worker process of bench/raw_celery.py and a sender."""

    def __init__(self, redis_url: str, log_dir: Path) -> None:
        self.queue = f"bench-raw-{uuid.uuid4().hex[:8]}"
        self.redis = redis.Redis.from_url(redis_url)
        self.sender = Celery("bench_raw_sender", broker=redis_url, set_as_current=False)
        env = {**os.environ, "BENCH_RAW_BROKER_URL": redis_url, "BENCH_RAW_QUEUE": self.queue}
        command = [sys.executable, "-m", "celery", "-A", "bench.raw_celery", "worker",
                   "--loglevel", "WARNING", "--concurrency", "1",
                   "--hostname", f"{self.queue}@%h"]  # fmt: skip
        log_dir.mkdir(parents=True, exist_ok=True)
        with (log_dir / "raw-celery.log").open("ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

    def round_trip_s(self) -> float:
        """Send the trivial task; seconds until the worker started it."""
        token = uuid.uuid4().hex
        sent = time.time()
        self.sender.send_task("bench.raw.started", args=[token], queue=self.queue)
        answer = self.redis.blpop([f"{self.queue}:started:{token}"], timeout=TASK_TIMEOUT_S)
        if answer is None:
            raise TimeoutError(f"the raw Celery worker did not start a task in {TASK_TIMEOUT_S} s")
        return float(answer[1]) - sent

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def ganforge_to_running_s(http: requests.Session, api_url: str) -> dict[str, float]:
    """POST a tiny job, cancel it once it runs, wait until it ended (the worker is idle
    again), and say how long it took to be `running`. Only its start matters: a cancel ends
    it within a second or two, where training to the end (launcher, torch import, the steps,
    a checkpoint) takes tens of seconds on a loaded machine."""
    sent = time.time()
    answer = http.post(f"{api_url}/api/v1/jobs", json=TINY_JOB, timeout=30)
    submit_s = time.time() - sent
    answer.raise_for_status()
    job_id = answer.json()["id"]
    deadline = time.monotonic() + JOB_TIMEOUT_S
    cancelled = False
    while time.monotonic() < deadline:
        job = http.get(f"{api_url}/api/v1/jobs/{job_id}", timeout=30).json()
        if job["state"] == "running" and not cancelled:
            http.post(f"{api_url}/api/v1/jobs/{job_id}/cancel", timeout=30).raise_for_status()
            cancelled = True
        if job["state"] in FINAL:
            if job["started_at"] is None:
                raise RuntimeError(f"job {job_id} ended {job['state']} without running: {job}")
            started = datetime.fromisoformat(job["started_at"]).timestamp()
            return {"to_running_s": started - sent, "submit_s": submit_s}
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} did not end in {JOB_TIMEOUT_S:.0f} s")


def _wait_for_node(http: requests.Session, api_url: str) -> None:
    deadline = time.monotonic() + NODE_TIMEOUT_S
    while time.monotonic() < deadline:
        nodes = http.get(f"{api_url}/api/v1/pool", timeout=30).json()["nodes"]
        if any(node["state"] == "up" for node in nodes):
            return
        time.sleep(0.2)
    raise TimeoutError(f"no worker node registered in {NODE_TIMEOUT_S:.0f} s")


def measure(samples: int, warm_up: bool = True, lab: Lab | None = None) -> dict[str, Any]:
    ours: list[dict[str, float]] = []
    raw_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="ganforge-bench-queue-") as scratch:
        home = Path(scratch)
        node = {"GANFORGE_NODE_NAME": "bench-node", "GANFORGE_CPU_SLOTS": "1"}
        with given_or_own_lab(lab) as lab, lab_settings(lab, home, **node) as settings:
            http = requests.Session()
            http.headers["Authorization"] = f"Bearer {bench_token(settings)}"
            raw = RawCelery(lab.redis_url, home / "logs")
            try:
                with ServiceProcesses(settings, home / "logs") as processes:
                    processes.start()
                    processes.wait_ready()
                    _wait_for_node(http, settings.api_url)
                    raw.round_trip_s()  # warm-up, not counted: first connections, imports
                    if warm_up:
                        ganforge_to_running_s(http, settings.api_url)
                    for sample in range(samples):
                        for side in ("raw", "ganforge") if sample % 2 else ("ganforge", "raw"):
                            if side == "raw":
                                raw_s.append(raw.round_trip_s())
                            else:
                                ours.append(ganforge_to_running_s(http, settings.api_url))
                            print(f"  sample {sample + 1} {side} done", flush=True)
            finally:
                raw.stop()
    to_running_ms = [s["to_running_s"] * 1000 for s in ours]
    raw_ms = [s * 1000 for s in raw_s]
    extra = median(to_running_ms) - median(raw_ms)
    return {
        "samples": samples,
        "ganforge_to_running_ms": spread(to_running_ms),
        "ganforge_submit_ms": round(median([s["submit_s"] * 1000 for s in ours]), 1),
        "raw_celery_ms": spread(raw_ms),
        "extra_ms": round(extra, 1),
        "goal": {"extra_ms_at_most": GOAL_EXTRA_MS, "met": extra <= GOAL_EXTRA_MS},
    }


def main(argv: list[str] | None = None, lab: Lab | None = None) -> dict[str, Any]:
    """Run from the command line; `lab` reuses running servers (the smoke tests' own)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--json", type=Path, default=Path("bench-queue.json"))
    parser.add_argument("--no-warm-up", action="store_true", help="count the first job too")
    parser.add_argument(
        "--first-step", type=int, default=3, metavar="N",
        help="samples per service start of POST -> first step, fork server against cold (0: skip)",
    )  # fmt: skip
    parser.add_argument(
        "--drain", type=int, default=0, metavar="JOBS",
        help="also time a queue of JOBS 200-step runs draining, cold, forked and as a sweep",
    )  # fmt: skip
    args = parser.parse_args(argv)
    results = measure(args.samples, warm_up=not args.no_warm_up, lab=lab)
    with given_or_own_lab(lab) as servers:
        if args.first_step:
            results["first_step"] = job_start.measure_first_step(servers, args.first_step)
        if args.drain:
            results["drain"] = job_start.measure_drain(servers, args.drain)
    ours, raw = results["ganforge_to_running_ms"], results["raw_celery_ms"]
    print(
        f"POST -> running  ganforge median {ours['median']:.1f} ms (min {ours['min']:.1f}, max"
        f" {ours['max']:.1f}; the POST itself {results['ganforge_submit_ms']:.1f} ms)\n"
        f"raw Celery send -> start  median {raw['median']:.1f} ms (min {raw['min']:.1f}, max"
        f" {raw['max']:.1f})\nganforge adds {results['extra_ms']:.1f} ms"
        f" (goal <= {GOAL_EXTRA_MS:.0f} ms), {args.samples} samples each"
    )
    if "first_step" in results or "drain" in results:
        print(job_start.describe(results.get("first_step"), results.get("drain")))
    return write_json(args.json, "queue", results)


if __name__ == "__main__":
    main()
