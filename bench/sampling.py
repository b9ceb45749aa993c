"""Sampling speed through the whole service against the same generator in-process.

    python -m bench.sampling [--repeats 10] [--threads 1] [--json bench-sampling.json] [--warm-only]
    python -m bench.sampling --embedded [--repeats 10]   # the warm job on the embedded service

One run starts PostgreSQL, Redis and a moto S3 server (throwaway, as the tests do), the API
under gunicorn, the scheduler and two workers: node `warm-node` (the warm sampler) and node
`cold-node` (GANFORGE_WARM_SAMPLER=0, a launcher per job), each job sent to one by a label. It
trains a DCGAN for one step on the repository's MNIST slice (sampling cost does not depend on
training), then times, each from the POST until the artifact has been downloaded over HTTP:

1. warm: a 64-image seeds job on the warm sampler, median of R, against the same work
   in-process (the checkpoint already loaded: draw with the same code, write the same PNG),
   alternated so a noisy neighbour hurts both; and against the in-process run that also
   fetches the checkpoint from S3 and loads it each time;
2. first use: the first job on a checkpoint (the warm sampler downloads and caches it);
3. cold: the same job with a launcher per job (process start, torch import, download);
4. throughput: a 10,000-image job on the warm sampler against the in-process loop.

"Downloaded" is what a script waiting for the file sees: it polls `GET /api/v1/jobs/<id>`
every 10 ms until the job is final, then downloads grid.png through the API. (The SSE stream
would be no faster: the server reads the database for it once a second.) Each warm job's time
is also split by stage, from its events' and artifacts' timestamps and the warm sampler's own
per-stage timer in the worker's log; `--warm-only` measures that alone (a minute or two).

`--embedded` runs the warm measurement alone on the embedded service instead (`ganforge up`:
SQLite, a local folder, the file-system broker, one worker with the warm sampler): its goal is
the Redis path's, ≤ 300 ms end to end.

The in-process side runs with the same torch threads as the service's ranks (--threads). Prints
a table and writes the figures as JSON. Goals on the lab's 2-core CI machine: warm 64 images
≤ 250 ms end to end; 10,000-image throughput ≥ 0.8x in-process.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

# Seeds of the timed small job, and of the throughput job.
SMALL_IMAGES = 64
LARGE_IMAGES = 10_000
# Seconds between looks at a job's state: short against a job of ~100 ms, long enough that the
# polls (each an HTTP request) cost the 2-core machine little.
POLL_S = 0.01
LONG_JOB_AFTER_S = 1.0
LONG_POLL_S = 0.05
# The client's moments of one job (wall clock) and its id, for `stages`.
Marks = dict[str, Any]
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
SOURCE_SPEC = {
    "model": {"family": "dcgan", "width": 64},
    "latent": {"dim": 64},
    "train": {"steps": 1, "batch_size": 8, "seed": 3},
    "checkpoint_every": 1,
    "sample_every": 1,
    "resources": {"labels": {"path": "cold"}},
}


def timed(action: Callable[[], Any]) -> float:
    began = time.perf_counter()
    action()
    return (time.perf_counter() - began) * 1000


def end_to_end(service: Any, spec: dict[str, Any], path: str, marks: Marks | None = None) -> float:
    """POST a sampling job for node `path`; milliseconds until grid.png is downloaded. With
    `marks`, the client's wall-clock moments and the job's id are kept for `stages`."""
    body = {
        "kind": "sample",
        "name": path,
        "spec": {**spec, "resources": {"labels": {"path": path}}},
    }
    moments: Marks = {"posted": time.time()}

    def run() -> None:
        answer = service.http.post(service.url("/api/v1/jobs"), json=body, timeout=30)
        job_id = answer.json()["id"]
        moments["job_id"] = job_id
        began = time.perf_counter()
        while True:
            job = service.http.get(service.url(f"/api/v1/jobs/{job_id}"), timeout=30).json()
            if job["state"] in ("succeeded", "failed", "cancelled"):
                break
            # A long job is looked at less often: its polls would take cores from it.
            waited = time.perf_counter() - began
            time.sleep(POLL_S if waited < LONG_JOB_AFTER_S else LONG_POLL_S)
        moments["seen_final"] = time.time()
        if job["state"] != "succeeded":
            raise RuntimeError(f"sampling job {job_id} ended {job['state']}: {job['error']}")
        url = service.url(f"/api/v1/jobs/{job_id}/artifacts/grid.png?redirect=false")
        grid = service.http.get(url, timeout=60)
        if grid.status_code != 200 or not grid.content.startswith(b"\x89PNG"):
            raise RuntimeError(f"grid.png of {job_id}: HTTP {grid.status_code}")
        moments["downloaded"] = time.time()

    moments["posted"] = time.time()
    took = timed(run)
    if marks is not None:
        marks.update(moments)
    return took


def stages(service: Any, marks: Marks) -> dict[str, float]:
    """Where one job's time went, in ms, from the client's moments and the job's own
    timestamps (its events and artifact rows; every process runs on this machine's clock)."""
    job_id = marks["job_id"]
    job = service.http.get(service.url(f"/api/v1/jobs/{job_id}"), timeout=30).json()
    events = service.http.get(service.url(f"/api/v1/jobs/{job_id}/events"), timeout=30).json()
    at = {e["to"]: _moment(e["at"]) for e in events["events"]}
    listed = service.http.get(service.url(f"/api/v1/jobs/{job_id}/artifacts"), timeout=30).json()
    made = {a["name"]: _moment(a["created_at"]) for a in listed["artifacts"]}
    stored = max(made[name] for name in ("grid.png", "latents.npy", "log.txt", "metrics.jsonl"))
    points = [
        ("POST -> job row", marks["posted"]),
        ("job row -> scheduled (wake-up, pass)", _moment(job["created_at"])),
        ("scheduled -> running (message, claim)", at["scheduled"]),
        ("running -> outputs and log stored (hand-over, draw, puts)", at["running"]),
        ("stored -> succeeded (result, outcome)", stored),
        ("succeeded -> client sees it (poll)", at["succeeded"]),
        ("seen -> grid.png downloaded", marks["seen_final"]),
        ("end", marks["downloaded"]),
    ]
    return {
        label: (following - moment) * 1000
        for (label, moment), (_, following) in itertools.pairwise(points)
    }


def sampler_laps(service: Any, job_ids: list[str]) -> dict[str, dict[str, float]]:
    """The warm sampler's own per-stage timer for these jobs, from the worker's log
    (`job <id> attempt 1: job read 3 ms, checkpoint 2 ms, ...`)."""
    laps: dict[str, list[float]] = {}
    for line in service.worker_log().splitlines():
        found = re.search(r"job (\w+) attempt \d+: (.*)$", line)
        if found is None or found.group(1) not in job_ids:
            continue
        for stage, ms in re.findall(r"([a-z ]+) (\d+) ms", found.group(2)):
            laps.setdefault(f"sampler: {stage.strip()}", []).append(float(ms))
    return {stage: summary(values) for stage, values in laps.items()}


def _moment(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def in_process(checkpoint: dict[str, Any], spec: dict[str, Any], out: Path) -> Callable[[], None]:
    """The same drawing the job does, with the checkpoint in hand, and its PNG written."""
    from shared.specs import parse_spec
    from worker.gan.sample import sample_for_spec

    sampling = parse_spec("sample", spec)

    def run() -> None:
        out.write_bytes(sample_for_spec(checkpoint, sampling, torch.device("cpu")).png)

    return run


def loading_in_process(service: Any, source: str, spec: dict[str, Any], out: Path) -> float:
    """In-process, fetching the checkpoint from S3 and loading it first."""
    from shared.storage import open_storage

    settings = service.settings
    store = open_storage(settings)

    def run() -> None:
        in_process(stored_checkpoint(settings, store, source), spec, out)()

    return timed(run)


def stored_checkpoint(settings: Any, store: Any, job_id: str) -> dict[str, Any]:
    """The job's latest checkpoint read straight from the store and loaded, as a process
    holding the store's keys would (the baseline the warm sampler is measured against)."""
    from shared.db import session_scope
    from shared.jobs.reports import latest_checkpoint
    from worker.gan.checkpoint import load_checkpoint

    with session_scope(settings.database_url) as session:
        row = latest_checkpoint(session, job_id)
        assert row is not None, f"job {job_id} has no checkpoint"
        key = row.key
    return load_checkpoint(store.get(key), map_location=torch.device("cpu"))


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def measure(
    service: Any, repeats: int, work: Path, warm_only: bool = False, train_on: str = "cold"
) -> dict[str, Any]:
    from shared.storage import open_storage

    source_spec = {**SOURCE_SPEC, "data": mnist_data(), "resources": {"labels": {"path": train_on}}}
    submitted = service.submit("train", source_spec, name="source")
    trained = service.wait_final(submitted["id"])
    if trained["state"] != "succeeded":
        raise RuntimeError(f"training the source failed: {trained['error']}")
    source = trained["id"]
    small = {"job_id": source, "seeds": list(range(SMALL_IMAGES))}
    large = {"job_id": source, "seeds": list(range(LARGE_IMAGES))}
    store = open_storage(service.settings)
    checkpoint = stored_checkpoint(service.settings, store, source)
    first_use = end_to_end(service, small, "warm")
    print(f"source trained; first warm use {first_use:.0f} ms", flush=True)
    warm, local, loading = [], [], []
    breakdowns: list[dict[str, float]] = []
    job_ids: list[str] = []
    for _ in range(repeats):
        marks: Marks = {}
        warm.append(end_to_end(service, small, "warm", marks))
        breakdowns.append(stages(service, marks))
        job_ids.append(marks["job_id"])
        local.append(timed(in_process(checkpoint, small, work / "small.png")))
        loading.append(loading_in_process(service, source, small, work / "small.png"))
    print(f"warm median {statistics.median(warm):.0f} ms", flush=True)
    if warm_only:
        laps = sampler_laps(service, job_ids)
        figures = {"images": SMALL_IMAGES, "warm_ms": summary(warm), **_stages_summary(breakdowns)}
        return {**figures, "sampler_laps_ms": laps}
    cold = [end_to_end(service, small, "cold") for _ in range(max(1, repeats // 4))]
    large_service, large_local = [], []
    for _ in range(max(1, repeats // 5)):
        large_service.append(end_to_end(service, large, "warm"))
        large_local.append(timed(in_process(checkpoint, large, work / "large.png")))
    ratios = [w / loc for w, loc in zip(warm, local, strict=True)]
    throughput = [loc / srv for srv, loc in zip(large_service, large_local, strict=True)]
    return {
        "images": SMALL_IMAGES,
        "warm_ms": summary(warm),
        "in_process_ms": summary(local),
        "in_process_from_s3_ms": summary(loading),
        "warm_over_in_process": summary(ratios),
        "warm_minus_in_process_ms": statistics.median(warm) - statistics.median(local),
        "first_use_ms": first_use,
        "cold_ms": summary(cold),
        "large_images": LARGE_IMAGES,
        "large_service_ms": summary(large_service),
        "large_in_process_ms": summary(large_local),
        "large_service_images_per_s": LARGE_IMAGES / statistics.median(large_service) * 1000,
        "large_in_process_images_per_s": LARGE_IMAGES / statistics.median(large_local) * 1000,
        "throughput_ratio": summary(throughput),
        **_stages_summary(breakdowns),
        "sampler_laps_ms": sampler_laps(service, job_ids),
    }


def _stages_summary(breakdowns: list[dict[str, float]]) -> dict[str, Any]:
    return {
        "warm_stages_ms": {
            label: summary([b[label] for b in breakdowns]) for label in breakdowns[0]
        }
    }


def mnist_data() -> dict[str, str]:
    from tests.helpers import MNIST_DIR

    return {"source": "mnist", "path": str(MNIST_DIR)}


def print_table(figures: dict[str, Any], repeats: int, threads: int) -> None:
    def row(label: str, stats: dict[str, float], unit: str = "ms") -> None:
        low, high = stats["min"], stats["max"]
        print(f"  {label:<44} {stats['median']:9.1f} {unit}  ({low:.1f}-{high:.1f})")

    print(f"DCGAN width 64 on 28x28 MNIST, torch threads {threads}, median of {repeats}")
    print(f"POST -> grid.png downloaded, {figures['images']} images:")
    row("warm sampler (service, HTTP)", figures["warm_ms"])
    row("in-process, checkpoint loaded", figures["in_process_ms"])
    row("in-process, checkpoint fetched from S3", figures["in_process_from_s3_ms"])
    row("warm / in-process (per pair)", figures["warm_over_in_process"], "x ")
    print(f"  {'warm - in-process':<44} {figures['warm_minus_in_process_ms']:9.1f} ms")
    print_stages(figures)
    first = figures["first_use_ms"]
    print(f"  {'first use of the checkpoint (warm, cache miss)':<44} {first:9.1f} ms")
    row("cold (GANFORGE_WARM_SAMPLER=0)", figures["cold_ms"])
    print(f"{figures['large_images']:,} images:")
    row("warm sampler (service, HTTP)", figures["large_service_ms"])
    row("in-process loop", figures["large_in_process_ms"])
    served, local = figures["large_service_images_per_s"], figures["large_in_process_images_per_s"]
    print(f"  {'images/s service vs in-process':<44} {served:9.0f} vs {local:.0f}")
    row("throughput service / in-process", figures["throughput_ratio"], "x ")


def print_stages(figures: dict[str, Any]) -> None:
    warm = figures["warm_ms"]
    print(f"  warm job, POST -> grid.png downloaded: {warm['median']:.1f} ms median")
    print("  where its time goes (median, min-max):")
    for label, stats in {**figures["warm_stages_ms"], **figures.get("sampler_laps_ms", {})}.items():
        low, high = stats["min"], stats["max"]
        print(f"    {label:<52} {stats['median']:7.1f} ms  ({low:.1f}-{high:.1f})")


@contextmanager
def embedded_service(home: Path, threads: int) -> Iterator[Any]:
    """The embedded service as `ganforge up` runs it, one warm-sampler node labelled as
    `end_to_end` sends its warm jobs, and a session authenticated as its local user."""
    import requests

    from cli.embedded import ServiceProcesses, prepare
    from shared.config import Settings
    from tests.e2e.conftest import Service
    from tests.helpers import MNIST_DIR
    from worker.gan.distributed import find_free_port

    settings = Settings.from_env(
        {
            "GANFORGE_HOME": str(home),
            "GANFORGE_API_URL": f"http://127.0.0.1:{find_free_port()}",
            "GANFORGE_NODE_NAME": "warm-node",
            "GANFORGE_CPU_SLOTS": "1",
            "GANFORGE_NODE_LABELS": "path=warm",
            "GANFORGE_TORCH_THREADS": str(threads),
            "GANFORGE_RATE_LIMIT": "0",
            "GANFORGE_DATA_ROOTS": str(MNIST_DIR.parent),
        }
    )
    token = prepare(settings)
    with ServiceProcesses(settings, home / "logs") as processes:
        processes.start()
        processes.wait_ready()
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token}"
        yield Service(settings, processes, http)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=Path("bench-sampling.json"))
    parser.add_argument(
        "--warm-only", action="store_true", help="the warm 64-image job and its stages alone"
    )
    parser.add_argument(
        "--embedded", action="store_true", help="the warm job alone, on the embedded service"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.embedded:
        with (
            tempfile.TemporaryDirectory(prefix="ganforge-bench-") as folder,
            embedded_service(Path(folder) / "home", args.threads) as service,
        ):
            figures = measure(service, args.repeats, Path(folder), True, train_on="warm")
        figures.update(threads=args.threads, repeats=args.repeats, service="embedded")
        print_stages(figures)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {args.json}")
        return
    os.environ.update(FAKE_AWS)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log

    from tests.e2e.conftest import running_service
    from tests.s3_server import start_moto_server
    from tests.servers import postgres_server, redis_server

    endpoint, stop_s3 = start_moto_server()
    node = {
        "GANFORGE_NODE_NAME": "warm-node",
        "GANFORGE_CPU_SLOTS": "1",
        "GANFORGE_NODE_LABELS": "path=warm",
        "GANFORGE_TORCH_THREADS": str(args.threads),
        # The polls of a 10,000-image job are far past the per-token limit.
        "GANFORGE_RATE_LIMIT": "0",
    }
    try:
        with (
            postgres_server() as postgres,
            redis_server() as redis_service,
            tempfile.TemporaryDirectory(prefix="ganforge-bench-") as folder,
        ):
            home = Path(folder) / f"home-{uuid.uuid4().hex[:6]}"
            with running_service(postgres, redis_service, endpoint, home, node) as service:
                service.processes.start_worker(
                    "cold-node", 1, node_labels="path=cold", warm_sampler=False
                )
                nodes = {"warm-node", "cold-node"}
                service.wait_until(lambda: {n["name"] for n in service.pool()["nodes"]} == nodes)
                figures = measure(service, args.repeats, Path(folder), args.warm_only)
    finally:
        stop_s3()
    figures.update(threads=args.threads, repeats=args.repeats)
    if args.warm_only:
        print_stages(figures)
    else:
        print_table(figures, args.repeats, args.threads)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
