"""A throwaway lab for the service benchmarks: PostgreSQL, Redis and a moto S3 server started as
the tests start them (tests/servers.py, tests/s3_server.py), a fresh database and bucket per
benchmark, and the ganforge Settings that point at them.

Also the bits every benchmark shares: the machine it ran on, percentiles, and writing the JSON
that bench/report.py turns into the README table.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import boto3

from shared.config import Settings
from shared.db import session_scope
from shared.migrate import upgrade
from shared.models import Job, User
from shared.users import create_token, create_user
from tests.s3_server import start_moto_server
from tests.servers import postgres_server, redis_server
from tests.services import fresh_database
from worker.gan.distributed import find_free_port

# moto accepts any credentials and boto3 refuses to sign without some; set for the run only, so
# a benchmark never reaches a real AWS account with the developer's own keys.
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class Lab:
    """The servers of one benchmark run: libpq URL of PostgreSQL, Redis URL, S3 endpoint."""

    postgres_url: str
    redis_url: str
    s3_endpoint: str


@contextmanager
def lab_servers() -> Iterator[Lab]:
    """PostgreSQL, Redis and moto S3 on free local ports, removed when the block ends."""
    with moto_s3() as endpoint, postgres_server() as postgres, redis_server() as redis_service:
        yield Lab(postgres.url, redis_service.url, endpoint)


@contextmanager
def moto_s3() -> Iterator[str]:
    """A moto S3 server on a free local port, its endpoint; the fake credentials are set
    for as long as it runs."""
    saved = {name: os.environ.get(name) for name in FAKE_AWS_ENV}
    os.environ.update(FAKE_AWS_ENV)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    endpoint, stop_s3 = start_moto_server()
    try:
        yield endpoint
    finally:
        stop_s3()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def given_or_own_lab(lab: Lab | None) -> Iterator[Lab]:
    """`lab` as given (a test session's servers, started once for many tests), or servers of
    the run's own when None (what `make bench` and the command lines do)."""
    if lab is not None:
        yield lab
        return
    with lab_servers() as own:
        yield own


@contextmanager
def lab_settings(lab: Lab, home: Path, **env: str) -> Iterator[Settings]:
    """Settings for a ganforge on its own fresh database (migrated), bucket and queue;
    `env` adds GANFORGE_* variables."""
    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=lab.s3_endpoint).create_bucket(Bucket=bucket)
    with fresh_database(lab.postgres_url) as database_url:
        upgrade(database_url)
        yield Settings.from_env(
            {
                "GANFORGE_HOME": str(home),
                "GANFORGE_DATABASE_URL": database_url,
                "GANFORGE_BROKER_URL": lab.redis_url,
                "GANFORGE_STORAGE_URL": f"s3://{bucket}/lab",
                "GANFORGE_S3_ENDPOINT_URL": lab.s3_endpoint,
                "GANFORGE_QUEUE": f"ganforge-bench-{uuid.uuid4().hex[:8]}",
                "GANFORGE_API_URL": f"http://127.0.0.1:{find_free_port()}",
                "GANFORGE_TORCH_THREADS": "1",
                **env,
            }
        )


def bench_token(settings: Settings, name: str = "bench") -> str:
    """A new user `name` and a bearer token for them."""
    with session_scope(settings.database_url) as session:
        create_user(session, name)
        return create_token(session, name, label="bench")


def running_job(
    settings: Settings, spec: dict[str, Any] | None = None, owner: str = "bench"
) -> str:
    """A running train job of `owner` (made by `bench_token`) at attempt 1: a fixture row, as
    bench/scheduler.py writes them, for a benchmark whose writes go through a job's agent
    (the agent fences every write by the job's state and attempt)."""
    with session_scope(settings.database_url) as session:
        owner_id = session.query(User).filter_by(name=owner).one().id
        job = Job(owner_id=owner_id, kind="train", name="bench", spec=spec or {}, state="running",
                  attempt=1, max_attempts=3, devices=1)  # fmt: skip
        session.add(job)
        session.flush()
        return job.id


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version()}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def spread(values: list[float], digits: int = 1) -> dict[str, Any]:
    """Median, min, max and every value, rounded: how a benchmark reports repeated samples."""
    return {
        "median": round(median(values), digits),
        "min": round(min(values), digits) if values else 0.0,
        "max": round(max(values), digits) if values else 0.0,
        "all": [round(v, digits) for v in values],
    }


def write_json(path: Path | None, name: str, results: dict[str, Any]) -> dict[str, Any]:
    """Stamp `results` with the benchmark, date and machine, and write them to `path`."""
    stamped = {
        "bench": name,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        **results,
    }
    if path is not None:
        path.write_text(json.dumps(stamped, indent=2) + "\n")
    return stamped
