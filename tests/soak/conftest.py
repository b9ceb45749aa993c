"""The soak's service: API (gunicorn), one scheduler and three Celery workers, each a node of
one CPU slot, on the suite's PostgreSQL, Redis and moto S3 (tests/e2e/conftest.py starts them);
four users with a token and an HTTP session each. The summary table of a run is printed at the
end of the pytest session."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from tests.e2e.conftest import Service, running_service
from tests.helpers import add_summary_lines, user_token
from tests.servers import TestServer

NODES = ("soak-a", "soak-b", "soak-c")
USERS = ("soak-ada", "soak-bo", "soak-cy", "soak-di")
# One slot a node: three jobs at most run at once, on a machine of two shared cores.
SLOTS_PER_NODE = 1
# The scheduler's housekeeping runs each sweep once its interval has passed since the start
# (scheduler/housekeeping.py), retention every 300 s and orphans hourly by default: short
# here, so both run during the warm-up (the first opens the store, a one-time load) and keep
# running through the soak, where a leak in them would show as growth. No soak job keeps a
# limited number of checkpoints, and no object is old enough for the orphan collector.
HOUSEKEEPING_ENV = {"GANFORGE_RETENTION_INTERVAL_S": "5", "GANFORGE_ORPHAN_INTERVAL_S": "60"}
# Seconds after the service starts by which both sweeps have run once.
HOUSEKEEPING_FIRST_S = 70.0


@dataclass
class SoakLab:
    service: Service
    users: list[requests.Session]  # one authenticated session per user, in USERS order
    started: float  # time.monotonic() when the service was started


@pytest.fixture(scope="module")
def soak_lab(
    postgres: TestServer,
    redis_service: TestServer,
    s3_endpoint: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SoakLab]:
    home = tmp_path_factory.mktemp("ganforge-soak")
    started = time.monotonic()
    with running_service(
        postgres, redis_service, s3_endpoint, home, HOUSEKEEPING_ENV, processes=("api", "scheduler")
    ) as service:
        for node in NODES:
            service.processes.start_worker(node, cpu_slots=SLOTS_PER_NODE)
        service.wait_until(lambda: {n["name"] for n in service.pool()["nodes"]} == set(NODES))
        sessions = []
        for name in USERS:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {user_token(service.settings, name)}"
            sessions.append(session)
        yield SoakLab(service, sessions, started)


@pytest.fixture
def soak_summary(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """The lines of the table printed at the end of the session: a test appends to it."""
    lines: list[str] = []
    yield lines
    add_summary_lines(request.node, "soak", lines)
