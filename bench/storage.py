"""Checkpoint upload and artifact download through ganforge, against plain boto3.

    python -m bench.storage [--mib 32] [--repeats 5] [--json bench-storage.json]

All on one moto S3 server (and PostgreSQL, Redis, the API under gunicorn) started for the run,
with the same random bytes, in the same bucket:

- **upload**: the path a sandboxed rank's checkpoint takes now. The rank holds no storage
  keys: it sends the bytes over its attempt's Unix socket (`AgentLink.call("put", ...)`, what
  `JobReporter.save_checkpoint` sends) to the attempt's node agent, here an `AttemptAgent`
  in this process admitting this process's session (as tests/attempts.py sets one up), which
  checks the request and runs `worker.artifacts.put_artifact` on its retrying S3 store (the
  attempt's fencing check, the upload, SHA-256, the artifact's row), on a running job row;
  against boto3's `upload_file` of the same bytes from a file (parts of 8 MiB, boto3's
  default), and against boto3's `put_object` of the bytes in memory (one request, as
  ganforge sends a checkpoint of up to 64 MiB; shared/storage/base.py
  VERIFIED_PUT_MAX_BYTES): the goal holds only if it holds against both;
- **download, streamed**: `GET /api/v1/jobs/<id>/artifacts/<name>?redirect=false` to a file,
  the API reading from S3 and streaming, against boto3's `download_file`;
- **download, presigned**: the same GET without `redirect=false`: a 302 to a presigned URL,
  followed, the bytes straight from S3.

Each repeat runs every side once, alternating which goes first, so a noisy neighbour hurts
all alike; figures are MB/s medians and the median of the per-repeat ratios to boto3.
Goal: >= 0.9x. The agent runs in this process (in the service, it is the worker's): its
threads and moto's share this interpreter with the sender, which a separate agent would not.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import requests

from bench.lab import (
    Lab,
    bench_token,
    given_or_own_lab,
    lab_settings,
    running_job,
    spread,
    write_json,
)
from cli.embedded import ServiceProcesses
from shared.storage import open_storage
from shared.storage.keys import artifact_key
from shared.storage.s3 import MULTIPART_CHUNKSIZE, MULTIPART_THRESHOLD
from tests.attempts import attempt_of

GOAL_RATIO = 0.9
NAME = "checkpoints/step-000100.pt"
STEP = 100
ATTEMPT = 1  # the running job row's (bench.lab.running_job)
# Streamed downloads are written in the store's own read size (shared/storage/s3.py).
CHUNK = 1024 * 1024


def _timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def _fetch(http: requests.Session, url: str, target: Path) -> None:
    with http.get(url, stream=True, timeout=120) as answer:
        answer.raise_for_status()
        with target.open("wb") as out:
            for chunk in answer.iter_content(CHUNK):
                out.write(chunk)


def measure(mib: int, repeats: int, lab: Lab | None = None) -> dict[str, Any]:
    data = os.urandom(mib * 1024 * 1024)
    digest = hashlib.sha256(data).hexdigest()
    seconds: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="ganforge-bench-storage-") as scratch:
        home = Path(scratch)
        source, target = home / "source.bin", home / "target.bin"
        source.write_bytes(data)
        with given_or_own_lab(lab) as lab, lab_settings(lab, home) as settings:
            http = requests.Session()
            http.headers["Authorization"] = f"Bearer {bench_token(settings)}"
            job_id = running_job(settings)
            store = open_storage(settings, patient=True)  # a worker's store: retrying
            bucket, prefix = settings.storage_url.removeprefix("s3://").split("/", 1)
            s3 = boto3.client("s3", endpoint_url=lab.s3_endpoint)
            # boto3 at ganforge's part sizes, so both sides send the same requests.
            config = boto3.s3.transfer.TransferConfig(
                multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_CHUNKSIZE
            )
            plain_key = f"{prefix}/plain/{NAME}"
            artifact_url = f"{settings.api_url}/api/v1/jobs/{job_id}/artifacts/{NAME}"

            with (
                ServiceProcesses(settings, home / "logs") as processes,
                attempt_of(settings, store, job_id, ATTEMPT, home / "agent") as attempt,
            ):
                sides: dict[str, Callable[[], object]] = {
                    "upload_boto3": lambda: s3.upload_file(
                        str(source), bucket, plain_key, Config=config
                    ),
                    # boto3's one-request upload of the bytes in memory (its default CRC32).
                    "upload_boto3_put": lambda: s3.put_object(
                        Bucket=bucket, Key=plain_key, Body=data
                    ),
                    # What a rank's reporter sends for a checkpoint (worker/reporter.py `_put`).
                    "upload_ganforge": lambda: attempt.link.call(
                        "put", data, name=NAME, kind="checkpoint", step=STEP
                    ),
                    "download_boto3": lambda: s3.download_file(
                        bucket, plain_key, str(target), Config=config
                    ),
                    "download_api_stream": lambda: _fetch(
                        http, f"{artifact_url}?redirect=false", target
                    ),
                    "download_presigned": lambda: _fetch(http, artifact_url, target),
                }
                processes.start(("api",))
                processes.wait_ready()
                for name in sides:  # warm-up: connections, first multipart upload
                    sides[name]()
                for repeat in range(repeats):
                    order = list(sides) if repeat % 2 == 0 else list(reversed(sides))
                    for name in order:
                        seconds.setdefault(name, []).append(_timed(sides[name]))
                        if name.startswith("download"):
                            assert hashlib.sha256(target.read_bytes()).hexdigest() == digest
                stored = s3.head_object(Bucket=bucket, Key=f"{prefix}/{artifact_key(job_id, NAME)}")
                assert stored["ContentLength"] == len(data)
                assert attempt.agent.violation is None, attempt.agent.violation
    return _figures(mib, repeats, seconds)


def _figures(mib: int, repeats: int, seconds: dict[str, list[float]]) -> dict[str, Any]:
    size_mb = mib * 1024 * 1024 / 1e6
    rates = {name: spread([size_mb / s for s in times]) for name, times in seconds.items()}
    pairs = {
        "upload": ("upload_ganforge", "upload_boto3"),
        "upload_vs_put_object": ("upload_ganforge", "upload_boto3_put"),
        "download_api_stream": ("download_api_stream", "download_boto3"),
        "download_presigned": ("download_presigned", "download_boto3"),
    }
    ratios = {}
    for label, (ours, plain) in pairs.items():
        each = [p / o for o, p in zip(seconds[ours], seconds[plain], strict=True)]
        ratios[label] = {"median": round(statistics.median(each), 3),
                         "min": round(min(each), 3), "max": round(max(each), 3)}  # fmt: skip
    worst = min(r["median"] for r in ratios.values())
    return {
        "mib": mib,
        "repeats": repeats,
        "mb_per_s": rates,
        "ratios": ratios,
        "goal": {"ratio_at_least": GOAL_RATIO, "met": worst >= GOAL_RATIO},
    }


def main(argv: list[str] | None = None, lab: Lab | None = None) -> dict[str, Any]:
    """Run from the command line; `lab` reuses running servers (the smoke tests' own)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=32, help="size of the checkpoint")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=Path("bench-storage.json"))
    args = parser.parse_args(argv)
    results = measure(args.mib, args.repeats, lab)
    rates = results["mb_per_s"]
    print(f"{args.mib} MiB, {args.repeats} repeats, MB/s medians (min-max)")
    for name, rate in rates.items():
        print(f"  {name:20s} {rate['median']:8.1f}  ({rate['min']:.1f}-{rate['max']:.1f})")
    for label, ratio in results["ratios"].items():
        print(f"  {label:20s} ganforge / boto3 {ratio['median']:.2f}"
              f" ({ratio['min']:.2f}-{ratio['max']:.2f})")  # fmt: skip
    return write_json(args.json, "storage", results)


if __name__ == "__main__":
    main()
