"""Schemathesis against the live API (gunicorn on PostgreSQL, no scheduler or worker, so no
generated job ever runs): for every operation, examples generated from the document itself,
valid and invalid, with a fixed seed and a bounded count. No answer may be a 5xx, and every
answer must match the document (status, content type, body schema)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from api.openapi import document
from tests.e2e.conftest import Service, running_service
from tests.servers import TestServer

# Examples per operation: about 20 operations, a few seconds each on this machine.
EXAMPLES = 25


@pytest.fixture(scope="module")
def contract_service(
    postgres: TestServer,
    redis_service: TestServer,
    s3_endpoint: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Service]:
    home: Path = tmp_path_factory.mktemp("ganforge-contract")
    env = {"GANFORGE_RATE_LIMIT": "0"}
    with running_service(postgres, redis_service, s3_endpoint, home, env, ("api",)) as service:
        yield service


# The document the service serves (tests/unit/test_openapi.py checks they are the same),
# loaded at collection so that each operation is its own test.
schema = schemathesis.openapi.from_dict(document())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_matches_the_document(
    case: schemathesis.Case, contract_service: Service
) -> None:
    case.call_and_validate(
        base_url=contract_service.settings.api_url,
        headers={"Authorization": contract_service.http.headers["Authorization"]},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
