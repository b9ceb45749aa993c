"""Fault scenarios: a whole ganforge (API, scheduler, one worker) on a PostgreSQL and a Redis
of its own, which the tests stop, kill and start again while jobs run. Own servers, not the
session's, so an outage here never reaches the other suites' services."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.e2e.conftest import Service, running_service
from tests.servers import ServerUnavailableError, TestServer, postgres_server, redis_server

pytestmark = pytest.mark.e2e

# Short bounds so that each scenario recovers within seconds, not the production minutes.
FAST_BOUNDS = {
    "GANFORGE_NODE_NAME": "fault-node",
    "GANFORGE_CPU_SLOTS": "2",
    "GANFORGE_NODE_TIMEOUT_S": "10",
    "GANFORGE_CLAIM_TIMEOUT_S": "5",
}


@dataclass
class FaultLab:
    service: Service
    postgres: TestServer
    redis: TestServer


@pytest.fixture(scope="module")
def lab(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultLab]:
    try:
        with postgres_server() as postgres, redis_server() as redis_service:
            if not (postgres.owned and redis_service.owned):
                pytest.fail(
                    "fault scenarios stop and kill their servers: unset "
                    "GANFORGE_TEST_DATABASE_URL / GANFORGE_TEST_REDIS_URL",
                    pytrace=False,
                )
            home = tmp_path_factory.mktemp("ganforge-faults")
            with running_service(
                postgres, redis_service, s3_endpoint, home, FAST_BOUNDS
            ) as service:
                yield FaultLab(service, postgres, redis_service)
    except ServerUnavailableError as error:
        pytest.fail(str(error), pytrace=False)
