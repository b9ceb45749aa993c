"""The soak's service: API (gunicorn), one scheduler and three Celery workers, each a node of
one CPU slot, on the suite's PostgreSQL, Redis and moto S3 (tests/e2e/conftest.py starts them);
four users with a token and an HTTP session each. The summary table of a run is printed at the
end of the pytest session."""

from __future__ import annotations

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


@dataclass
class SoakLab:
    service: Service
    users: list[requests.Session]  # one authenticated session per user, in USERS order


@pytest.fixture(scope="module")
def soak_lab(
    postgres: TestServer,
    redis_service: TestServer,
    s3_endpoint: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SoakLab]:
    home = tmp_path_factory.mktemp("ganforge-soak")
    with running_service(
        postgres, redis_service, s3_endpoint, home, {}, processes=("api", "scheduler")
    ) as service:
        for node in NODES:
            service.processes.start_worker(node, cpu_slots=SLOTS_PER_NODE)
        service.wait_until(lambda: {n["name"] for n in service.pool()["nodes"]} == set(NODES))
        sessions = []
        for name in USERS:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {user_token(service.settings, name)}"
            sessions.append(session)
        yield SoakLab(service, sessions)


@pytest.fixture
def soak_summary(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """The lines of the table printed at the end of the session: a test appends to it."""
    lines: list[str] = []
    yield lines
    add_summary_lines(request.node, "soak", lines)
