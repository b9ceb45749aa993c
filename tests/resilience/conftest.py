"""Fault scenarios: a whole ganforge (API, scheduler, one worker) on a PostgreSQL and a Redis
of its own and behind a proxy to S3, which the tests stop, kill, pause and start again while
jobs run. Own servers, not the session's, so an outage here never reaches the other suites.

Each scenario records how long the service took to recover (`recovery` fixture); the table is
printed at the end of the run and copied into the README."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import Service, running_service
from tests.faultproxy import FaultProxy
from tests.helpers import add_summary_lines
from tests.servers import ServerUnavailableError, TestServer, postgres_server, redis_server

NODE = "fault-node"
# Short bounds so that each scenario recovers within seconds, not the production minutes.
FAST_BOUNDS = {
    "GANFORGE_NODE_NAME": NODE,
    "GANFORGE_CPU_SLOTS": "2",
    "GANFORGE_NODE_TIMEOUT_S": "10",
    "GANFORGE_CLAIM_TIMEOUT_S": "5",
    "GANFORGE_JOB_SILENCE_S": "30",
}


@dataclass
class FaultLab:
    service: Service
    postgres: TestServer
    redis: TestServer
    s3: FaultProxy

    def path(self, job_id: str) -> list[str]:
        """The states the job went through, in order."""
        return [to for _, to in self.service.events(job_id)]

    def assert_nothing_left(self, job_id: str) -> None:
        """No process of the job runs and no work folder of it stays on the node."""
        wanted = f"--job-id\0{job_id}\0".encode()
        running = [
            proc.name
            for proc in Path("/proc").iterdir()
            if proc.name.isdigit() and wanted in _cmdline(proc)
        ]
        assert not running, f"processes of job {job_id} still run: {running}"
        work = self.service.settings.home / "work" / NODE
        # Work folders are named <first 8 of the id>-<attempt>-<random> (worker/supervisor.py).
        folders = list(work.glob(f"{job_id[:8]}-*")) if work.exists() else []
        left = [folder.name for folder in folders]
        assert not left, f"work folders of job {job_id} left: {left}"


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


@pytest.fixture(scope="module")
def lab(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultLab]:
    proxy = FaultProxy(s3_endpoint)
    try:
        with postgres_server() as postgres, redis_server() as redis_service:
            if not (postgres.owned and redis_service.owned):
                pytest.fail(
                    "fault scenarios stop and kill their servers: unset "
                    "GANFORGE_TEST_DATABASE_URL / GANFORGE_TEST_REDIS_URL",
                    pytrace=False,
                )
            home = tmp_path_factory.mktemp("ganforge-faults")
            with running_service(postgres, redis_service, proxy.url, home, FAST_BOUNDS) as service:
                yield FaultLab(service, postgres, redis_service, proxy)
    except ServerUnavailableError as error:
        pytest.fail(str(error), pytrace=False)
    finally:
        proxy.close()


@pytest.fixture
def recovery(request: pytest.FixtureRequest) -> Callable[[str, float], None]:
    """Record this scenario's recovery time: recovery("what was measured", seconds)."""

    def record(what: str, seconds: float) -> None:
        line = f"{seconds:7.1f} s  {request.node.name}: {what}"
        add_summary_lines(request.node, "recovery times of the fault scenarios", [line])

    return record
