"""Schemathesis against the live API (gunicorn on PostgreSQL): for every operation, examples
generated from the document itself, valid and invalid, with a fixed seed and a bounded count.
No answer may be a 5xx, and every answer must match the document (status, content type, body
schema).

Generated job ids name no job, so the downloads are also checked on a real one: a tiny
training job, run to the end by the real scheduler and worker before the generated requests
start; then both stop, so no generated job ever runs."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from tests.helpers import RING_SPEC, with_steps
from tests.servers import TestServer

# Examples per operation: about 20 operations, a few seconds each on this machine.
EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
ARTIFACT_ROUTE = "/api/v1/jobs/{job_id}/artifacts/{name}"
# Steps of the real job: one checkpoint and one sample grid, in seconds.
TINY_STEPS = 4


def true_to_type(media: str, body: bytes) -> bool:
    """Whether `body` is what its Content-Type says: a type must be true, not only documented.
    Raises (a JSON or UTF-8 error) for text that is not."""
    if media == "image/png":
        return body.startswith(b"\x89PNG\r\n\x1a\n")
    if media == "image/gif":
        return body.startswith(b"GIF8")
    if media == "application/json":
        json.loads(body)
    elif media == "application/x-ndjson":
        [json.loads(line) for line in body.splitlines()]
    elif media == "text/plain":
        body.decode("utf-8")
    return True


@dataclass
class Contract:
    service: Service
    # A job run to the end by the real worker, with its artifacts in S3.
    job: dict[str, Any]


@pytest.fixture(scope="module")
def contract(
    postgres: TestServer,
    redis_service: TestServer,
    s3_endpoint: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Contract]:
    home: Path = tmp_path_factory.mktemp("ganforge-contract")
    env = {
        "GANFORGE_RATE_LIMIT": "0",
        "GANFORGE_NODE_NAME": "contract-node",
        "GANFORGE_CPU_SLOTS": "1",
        # Training only: no warm sampler process to start beside it.
        "GANFORGE_WARM_SAMPLER": "0",
    }
    with running_service(postgres, redis_service, s3_endpoint, home, env) as service:
        spec = with_steps(RING_SPEC, TINY_STEPS, batch_size=64, seed=1)
        job = service.wait_final(service.submit("train", spec, name="contract")["id"])
        assert job["state"] == "succeeded", job["error"]
        # Generated requests submit jobs too: none of them may take the machine's cores.
        service.processes.stop(("scheduler", "worker"))
        yield Contract(service, job)


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
def test_every_answer_matches_the_document(case: schemathesis.Case, contract: Contract) -> None:
    case.call_and_validate(
        base_url=contract.service.settings.api_url,
        headers={"Authorization": contract.service.http.headers["Authorization"]},
        checks=CHECKS,
    )


def test_every_artifact_of_a_real_job_downloads_as_the_document_says(contract: Contract) -> None:
    """Each artifact the job lists, fetched through the documented operation (its name in the
    pattern the document gives): streamed, a 200 whose type is documented and true to the
    bytes, which are the listed ones; by default, a documented 302 to S3. Schemathesis's own
    examples never hold a `/` (it drops generated path values that do), so only a real job's
    names reach the route with one."""
    service, job_id = contract.service, contract.job["id"]
    listed = service.artifacts(job_id)
    assert any("/" in name for name in listed), sorted(listed)
    operation = schema[ARTIFACT_ROUTE]["GET"]
    (name_parameter,) = [
        p for p in document()["paths"][ARTIFACT_ROUTE]["get"]["parameters"] if p["name"] == "name"
    ]
    pattern = re.compile(name_parameter["schema"]["pattern"])
    call = {
        "base_url": service.settings.api_url,
        "headers": {"Authorization": service.http.headers["Authorization"]},
        "checks": CHECKS,
    }
    types = set()
    for name, artifact in listed.items():
        assert pattern.fullmatch(name), f"{name} is outside the documented pattern"
        where = {"job_id": job_id, "name": name}
        streamed = operation.Case(path_parameters=where, query={"redirect": "false"})
        response = streamed.call_and_validate(**call)
        assert response.status_code == 200, (name, response.text)
        assert hashlib.sha256(response.content).hexdigest() == artifact["sha256"], name
        media = response.headers["content-type"][0].split(";")[0]
        types.add(media)
        assert true_to_type(media, response.content), f"{name} is no {media}"
        redirected = operation.Case(path_parameters=where)
        response = redirected.call_and_validate(**call, allow_redirects=False)
        assert response.status_code == 302 and response.headers["location"], name
    assert {"image/png", "image/gif", "text/plain", "application/octet-stream"} <= types
    # The `/` as is (as the CLI and the calls above send it) or percent-encoded (as a client
    # that follows the path template's rules sends it): the same route answers both.
    grid = next(name for name in listed if name.startswith("samples/"))
    for sent in (grid, grid.replace("/", "%2F")):
        url = service.url(f"/api/v1/jobs/{job_id}/artifacts/{sent}?redirect=false")
        answer = service.http.get(url, timeout=30)
        assert answer.status_code == 200, (sent, answer.text)
        assert hashlib.sha256(answer.content).hexdigest() == listed[grid]["sha256"], sent
