"""End-to-end fixtures: the API (gunicorn), dispatcher and Celery worker as real processes
against the suite's PostgreSQL, Redis and moto S3 servers, driven over HTTP."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from cli.embedded import ServiceProcesses
from shared.config import Settings
from shared.migrate import upgrade
from tests.helpers import MNIST_DIR, user_token
from tests.servers import TestServer
from tests.services import fresh_database
from worker.gan.distributed import find_free_port

FINAL = ("succeeded", "failed", "cancelled")


@dataclass
class Service:
    """A running ganforge and an authenticated HTTP session against it."""

    settings: Settings
    processes: ServiceProcesses
    http: requests.Session

    def url(self, path: str) -> str:
        return self.settings.api_url + path

    def submit(self, kind: str, spec: dict[str, Any], name: str = "e2e") -> dict[str, Any]:
        response = self.http.post(
            self.url("/api/v1/jobs"), json={"kind": kind, "name": name, "spec": spec}, timeout=30
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.http.get(self.url(f"/api/v1/jobs/{job_id}"), timeout=30)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def wait_until(self, condition: Callable[[], bool], timeout_s: float = 240) -> None:
        """Poll `condition` until it holds; fail with the pool and the workers' logs if never."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.processes.check_alive()
            if condition():
                return
            time.sleep(0.25)
        raise AssertionError(f"never happened; pool: {self.pool()}\n{self.worker_log()[-4000:]}")

    def wait_for(
        self, job_id: str, until: Callable[[dict[str, Any]], bool], timeout_s: float = 240
    ) -> dict[str, Any]:
        """Poll the job until `until(job)` holds, and return it."""
        seen: list[dict[str, Any]] = []

        def reached() -> bool:
            seen[:] = [self.job(job_id)]
            return until(seen[0])

        try:
            self.wait_until(reached, timeout_s)
        except AssertionError as never:
            raise AssertionError(f"job never got there: {seen}\n{never}") from None
        return seen[0]

    def wait_final(self, job_id: str, timeout_s: float = 240) -> dict[str, Any]:
        return self.wait_for(job_id, lambda job: job["state"] in FINAL, timeout_s)

    def artifacts(self, job_id: str) -> dict[str, dict[str, Any]]:
        response = self.http.get(self.url(f"/api/v1/jobs/{job_id}/artifacts"), timeout=30)
        return {a["name"]: a for a in response.json()["artifacts"]}

    def download(self, job_id: str, name: str) -> bytes:
        response = self.http.get(self.url(f"/api/v1/jobs/{job_id}/artifacts/{name}"), timeout=60)
        assert response.status_code == 200, response.text
        return response.content

    def events(self, job_id: str) -> list[tuple[str | None, str]]:
        response = self.http.get(self.url(f"/api/v1/jobs/{job_id}/events"), timeout=30)
        return [(e["from"], e["to"]) for e in response.json()["events"]]

    def worker_log(self) -> str:
        """Every worker's log (one file per worker process), concatenated."""
        logs = sorted(self.processes.log_dir.glob("worker*.log"))
        return "".join(path.read_text(errors="replace") for path in logs)

    def pool(self) -> dict[str, Any]:
        response = self.http.get(self.url("/api/v1/pool"), timeout=30)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


@contextmanager
def running_service(
    postgres: TestServer,
    redis_service: TestServer,
    s3_endpoint: str,
    home: Path,
    env: dict[str, str],
    processes: tuple[str, ...] = ("api", "scheduler", "worker"),
) -> Iterator[Service]:
    """A ganforge on its own database, bucket and queue; `env` adds to its settings."""
    bucket = f"e2e-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    with fresh_database(postgres.url) as database_url:
        upgrade(database_url)
        settings = Settings.from_env(
            {
                "GANFORGE_HOME": str(home),
                "GANFORGE_DATABASE_URL": database_url,
                "GANFORGE_BROKER_URL": redis_service.url,
                "GANFORGE_STORAGE_URL": f"s3://{bucket}/lab",
                "GANFORGE_S3_ENDPOINT_URL": s3_endpoint,
                "GANFORGE_QUEUE": f"ganforge-e2e-{uuid.uuid4().hex[:8]}",
                "GANFORGE_API_URL": f"http://127.0.0.1:{find_free_port()}",
                # 2 cores: one thread per rank keeps ranks x threads within the machine.
                "GANFORGE_TORCH_THREADS": "1",
                "GANFORGE_PROGRESS_INTERVAL_S": "0.5",
                "GANFORGE_CANCEL_GRACE_S": "60",
                # The repo's test data is the one worker folder jobs may name by path.
                "GANFORGE_DATA_ROOTS": str(MNIST_DIR.parent),
                **env,
            }
        )
        token = user_token(settings, "e2e-user")
        with ServiceProcesses(settings, home / "logs") as service_processes:
            service_processes.start(processes)
            service_processes.wait_ready()
            http = requests.Session()
            http.headers["Authorization"] = f"Bearer {token}"
            yield Service(settings, service_processes, http)


@pytest.fixture(scope="session")
def service(
    postgres: TestServer,
    redis_service: TestServer,
    s3_endpoint: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Service]:
    home = tmp_path_factory.mktemp("ganforge-home")
    # One node with two CPU slots: two one-rank jobs or one two-rank job at a time.
    node = {"GANFORGE_NODE_NAME": "e2e-node", "GANFORGE_CPU_SLOTS": "2"}
    with running_service(postgres, redis_service, s3_endpoint, home, node) as running:
        yield running
