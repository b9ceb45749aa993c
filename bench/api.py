"""The API under load against the bare tool: requests per second with p50/p99 latency.

    python -m bench.api [--duration 30] [--clients 32] [--ops poll list submit]
        [--json bench-api.json]

ganforge's API (gunicorn, gthread, 2 processes x 8 threads, on PostgreSQL, Redis and moto S3
started for the run) against bench/bare_api.py: a minimal Flask + SQLAlchemy app under
gunicorn with the same command line, doing the same token check (SHA-256 of the token looked
up in `api_tokens`) and the same reads and writes, on the same database. Three operations:

- **poll**: `GET /api/v1/jobs/<id>` of one of the user's jobs (each client its own);
- **list**: `GET /api/v1/jobs` (the newest 50);
- **submit**: `POST /api/v1/jobs` of a small training spec.

Each operation runs `--clients` closed-loop clients for `--duration` seconds per side, in
turns of a few seconds alternating ganforge and bare (bench/load.py), so a noisy neighbour on
the shared cores hurts both alike. The figure is ganforge's rate over the bare one; the goal
is polls >= 0.5x. Each side's server CPU per answered request (its gunicorn processes, read
from /proc in its own turns) is given beside: on a machine loaded by others the rates swing
with the neighbours, the CPU a request costs much less. The rate limiter stays on (each API
process adds its count to Redis every 0.1 s, api/ratelimit.py); its limit is set out of reach
so the load is not refused.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from bench.lab import Lab, bench_token, given_or_own_lab, lab_settings, write_json
from bench.load import Request, RequestMaker, interleaved
from cli.embedded import ServiceProcesses, service_commands
from shared.config import Settings
from worker.gan.distributed import find_free_port

GOAL_POLL_RATIO = 0.5
OPERATIONS = ("poll", "list", "submit")
# Out of reach for the run: the limiter's Redis round trip still runs on every request.
RATE_LIMIT = 1_000_000_000
SUBMIT_BODY: dict[str, Any] = {
    "kind": "train",
    "name": "bench",
    "spec": {"model": {"family": "mlp", "width": 32}, "data": {"source": "toy:ring8"}},
}
READY_TIMEOUT_S = 60.0


@contextmanager
def bare_server(settings: Settings, log_dir: Path) -> Iterator[tuple[str, int]]:
    """The bare app under gunicorn with ganforge's own command line (workers, threads,
    access log), only the app and gunicorn's worker class named directly: (URL, its pid)."""
    port = find_free_port()
    command = service_commands(settings)["api"]
    command[command.index("--bind") + 1] = f"127.0.0.1:{port}"
    at = command.index("--config")
    command[at : at + 2] = ["--worker-class", "gthread"]
    command[-1] = "bench.bare_api:create_app()"
    env = {**os.environ, "BENCH_BARE_DATABASE_URL": settings.database_url}
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "bare.log").open("ab") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_answering(f"{url}/bare/jobs/none", process)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_answering(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the bare API exited with code {process.returncode}")
        try:
            requests.get(url, timeout=10)
            return
        except requests.RequestException:  # not listening yet, or too busy starting to answer
            time.sleep(0.2)
    raise TimeoutError(f"the bare API at {url} did not answer in {READY_TIMEOUT_S:.0f} s")


def _makers(job_ids: list[str], prefix: str) -> dict[str, RequestMaker]:
    body = json.dumps(SUBMIT_BODY).encode()
    return {
        "poll": lambda i: Request("GET", f"{prefix}/jobs/{job_ids[i % len(job_ids)]}"),
        "list": lambda i: Request("GET", f"{prefix}/jobs"),
        "submit": lambda i: Request("POST", f"{prefix}/jobs", body, expect=201),
    }


def measure(
    duration_s: float,
    clients: int,
    turn_s: float,
    lab: Lab | None = None,
    ops: tuple[str, ...] = OPERATIONS,
) -> dict[str, Any]:
    """Start the lab, both APIs, and load each of `ops` on both sides in turns."""
    with tempfile.TemporaryDirectory(prefix="ganforge-bench-api-") as scratch:
        home = Path(scratch)
        with (
            given_or_own_lab(lab) as lab,
            lab_settings(lab, home, GANFORGE_RATE_LIMIT=str(RATE_LIMIT)) as settings,
        ):
            token = bench_token(settings)
            headers = {"Authorization": f"Bearer {token}"}
            with ServiceProcesses(settings, home / "logs") as processes:
                processes.start(("api",))
                processes.wait_ready()
                session = requests.Session()
                session.headers.update(headers)
                # One job per client to poll: a poll reads a row by its primary key, and which row
                # does not matter, but clients reading distinct rows is closer to a lab.
                job_ids = [
                    session.post(f"{settings.api_url}/api/v1/jobs", json=SUBMIT_BODY).json()["id"]
                    for _ in range(clients)
                ]
                with bare_server(settings, home / "logs") as (bare_url, bare_pid):
                    pids = {"ganforge": processes.processes["api"].pid, "bare": bare_pid}
                    ours, bare = _makers(job_ids, "/api/v1"), _makers(job_ids, "/bare")
                    # A short warm-up of each side (connections, imports, plans) first.
                    warm = {"ganforge": (settings.api_url, headers, ours["poll"]),
                            "bare": (bare_url, headers, bare["poll"])}  # fmt: skip
                    interleaved(warm, clients, 2 * min(turn_s, 1.0), min(turn_s, 1.0))
                    operations: dict[str, dict[str, Any]] = {}
                    for op in ops:
                        sides = {
                            "ganforge": (settings.api_url, headers, ours[op]),
                            "bare": (bare_url, headers, bare[op]),
                        }
                        tallies = interleaved(sides, clients, duration_s, turn_s, pids)
                        figures = {name: tally.summary() for name, tally in tallies.items()}
                        rate = figures["bare"]["per_second"]
                        ratio = figures["ganforge"]["per_second"] / rate if rate else 0.0
                        operations[op] = {**figures, "ratio": round(ratio, 3)}
                        _print_row(op, operations[op])
    poll_ratio = operations["poll"]["ratio"] if "poll" in operations else None
    return {
        "clients": clients,
        "duration_s": duration_s,
        "turn_s": turn_s,
        "operations": operations,
        "goal": {
            "poll_ratio_at_least": GOAL_POLL_RATIO,
            "met": None if poll_ratio is None else poll_ratio >= GOAL_POLL_RATIO,
        },
    }


def _print_row(op: str, figures: dict[str, Any]) -> None:
    ours, bare = figures["ganforge"], figures["bare"]
    print(
        f"{op:7s} ganforge {ours['per_second']:8.1f}/s p50 {ours['p50_ms']:7.2f} ms"
        f" p99 {ours['p99_ms']:7.2f} ms ({ours['errors']} errors)   bare"
        f" {bare['per_second']:8.1f}/s p50 {bare['p50_ms']:7.2f} ms p99 {bare['p99_ms']:7.2f} ms"
        f" ({bare['errors']} errors)   ratio {figures['ratio']:.2f}"
        f"   server CPU/request {ours['server_cpu_ms_per_request']} ms against"
        f" {bare['server_cpu_ms_per_request']} ms",
        flush=True,
    )


def main(argv: list[str] | None = None, lab: Lab | None = None) -> dict[str, Any]:
    """Run from the command line; `lab` reuses running servers (the smoke tests' own)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per side and op")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--turn", type=float, default=2.5, help="seconds per interleaved turn")
    parser.add_argument(
        "--ops", nargs="+", choices=OPERATIONS, default=list(OPERATIONS), help="which to load"
    )
    parser.add_argument("--json", type=Path, default=Path("bench-api.json"))
    args = parser.parse_args(argv)
    print(f"{args.clients} clients, {args.duration:g} s per side and operation", flush=True)
    results = measure(args.duration, args.clients, args.turn, lab, tuple(args.ops))
    return write_json(args.json, "api", results)


if __name__ == "__main__":
    main()
