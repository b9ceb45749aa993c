"""A researcher's own training loop as a `script` job, run by the worker's supervisor as the
task runs it (agent, sandbox, launcher, two ranks over gloo): checked at submission, preempted
midway (the loop checkpoints and returns), then resumed by the next attempt from that
checkpoint, with no step done twice; then sampled from the generator it saved."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from cli.packing import zip_folder
from shared.config import Settings
from shared.db import session_scope
from shared.models import Job
from shared.pool.preemption import request_preemption, requeue_preempted
from shared.storage import keys, open_storage
from tests.helpers import auth
from tests.unit.job_factories import S, move
from worker.supervisor import RunOutcome, supervise

pytestmark = pytest.mark.processes

LOOP = Path(__file__).resolve().parents[2] / "examples" / "byo" / "script" / "ringloop"
STEPS = 40


def _script(code: str, entrypoint: str = "ringloop.train:main") -> dict[str, Any]:
    return {
        "code": code,
        "entrypoint": entrypoint,
        "args": {"steps": STEPS, "batch_size": 32, "width": 16, "checkpoint_every": 10,
                 "seconds_per_step": 0.05},
        "steps": STEPS,
        "resources": {"devices": 2, "preemptible": True},
    }  # fmt: skip


def _submit(client: FlaskClient, token: str, spec: dict[str, Any]) -> Any:
    body = {"kind": "script", "name": "loop", "spec": spec}
    return client.post("/api/v1/jobs", json=body, headers=auth(token))


def _steps_reported(settings: Settings, job_id: str) -> list[int]:
    metrics = open_storage(settings).get(keys.artifact_key(job_id, keys.METRICS_NAME))
    return [json.loads(line)["step"] for line in metrics.decode().splitlines() if line]


def test_a_script_job_is_preempted_and_resumes_with_nothing_redone(
    client: FlaskClient, settings: Settings, alice: str
) -> None:
    settings = settings.with_(progress_interval_s=0.2)
    packed = zip_folder(LOOP)
    uploaded = client.post(
        "/api/v1/code",
        data={"file": (io.BytesIO(packed.data), "ringloop.zip")},
        headers=auth(alice),
        content_type="multipart/form-data",
    )
    assert uploaded.status_code == 201, uploaded.get_json()
    code = uploaded.get_json()["id"]
    refused = _submit(client, alice, _script(code, "ringloop.nowhere:main"))
    assert refused.status_code == 422
    assert "spec.entrypoint" in str(refused.get_json())
    submitted = _submit(client, alice, _script(code))
    assert submitted.status_code == 201, submitted.get_json()
    job_id, store = submitted.get_json()["id"], open_storage(settings)
    move(settings, job_id, S.QUEUED, S.SCHEDULED, S.RUNNING)

    outcomes: list[RunOutcome] = []
    first = threading.Thread(target=lambda: outcomes.append(supervise(settings, store, job_id, 1)))
    first.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # preempt once the loop is past its first checkpoint
        with session_scope(settings.database_url) as session:
            progress = session.scalar(select(Job.progress).where(Job.id == job_id)) or {}
        if progress.get("step", 0) >= 12:
            break
        time.sleep(0.1)
    with session_scope(settings.database_url) as session:
        request_preemption(session, [job_id], "a priority job needs the devices")
    first.join(timeout=120)
    assert outcomes and outcomes[0].status == "cancelled", outcomes
    stopped_at = max(_steps_reported(settings, job_id))
    assert stopped_at < STEPS

    with session_scope(settings.database_url) as session:
        assert requeue_preempted(session, job_id, 1)
    move(settings, job_id, S.QUEUED, S.SCHEDULED, S.RUNNING)
    with session_scope(settings.database_url) as session:
        attempt = session.scalar(select(Job.attempt).where(Job.id == job_id))
    resumed = supervise(settings, store, job_id, attempt)
    assert resumed.status == "succeeded", resumed.error
    steps = _steps_reported(settings, job_id)
    assert steps == sorted(set(steps)), "a step was reported twice: work was redone"
    assert steps[-1] == STEPS
    log = store.get(keys.artifact_key(job_id, keys.LOG_NAME)).decode()
    assert f"resumed at step {stopped_at}" in log
    assert store.get(keys.artifact_key(job_id, "files/final-step.txt")) == str(STEPS).encode()
    assert store.get(keys.artifact_key(job_id, keys.samples_name(STEPS))).startswith(b"\x89PNG")

    # The generator it saved samples as a built-in job's does (cold: it runs their code).
    sampling = client.post(
        "/api/v1/jobs",
        json={"kind": "sample", "name": "s", "spec": {"job_id": job_id, "seeds": [0, 1, 2]}},
        headers=auth(alice),
    )
    assert sampling.status_code == 201, sampling.get_json()
    sample_id = sampling.get_json()["id"]
    move(settings, sample_id, S.QUEUED, S.SCHEDULED, S.RUNNING)
    sampled = supervise(settings, store, sample_id, 1)
    assert sampled.status == "succeeded", sampled.error
    assert store.get(keys.artifact_key(sample_id, keys.GRID_NAME)).startswith(b"\x89PNG")
