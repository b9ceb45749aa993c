"""The worker reads a sampling job's `.npy` latents only from its owner's jobs, whatever the
spec says (the API checked at submission; the worker checks again)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient

from shared.config import Settings
from shared.specs.sample import LatentsArtifact
from shared.storage import open_storage
from tests.attempts import attempt_of
from tests.helpers import auth, train_request
from worker.artifacts import put_artifact
from worker.rank_inputs import JobInputError, load_latents_artifact

ARTIFACT = "latents.npy"


def _job_with_latents(client: FlaskClient, settings: Settings, token: str) -> str:
    response = client.post("/api/v1/jobs", json=train_request(), headers=auth(token))
    job_id = str(response.get_json()["id"])
    buffer = io.BytesIO()
    np.save(buffer, np.ones((2, 4), dtype=np.float32))
    store = open_storage(settings)
    put_artifact(settings.database_url, store, job_id, ARTIFACT, "latents", buffer.getvalue())
    return job_id


def test_the_worker_reads_latents_of_the_owners_jobs_only(
    client: FlaskClient, settings: Settings, alice: str, bob: str, tmp_path: Path
) -> None:
    alices, bobs = (_job_with_latents(client, settings, token) for token in (alice, bob))
    sampling = {"job_id": bobs, "latents": {"job_id": bobs, "name": ARTIFACT}}
    response = client.post(
        "/api/v1/jobs", json={"kind": "sample", "name": "s", "spec": sampling}, headers=auth(bob)
    )
    assert response.status_code == 201, response.get_json()
    job_id, store = response.get_json()["id"], open_storage(settings)
    with attempt_of(settings, store, job_id, 1, tmp_path) as attempt:
        own = load_latents_artifact(attempt.link, LatentsArtifact(job_id=bobs, name=ARTIFACT))
        assert np.array_equal(np.load(io.BytesIO(own)), np.ones((2, 4), dtype=np.float32))
        with pytest.raises(JobInputError, match=r"^spec\.latents\.job_id: no job"):
            load_latents_artifact(attempt.link, LatentsArtifact(job_id=alices, name=ARTIFACT))
        with pytest.raises(JobInputError, match=r"^spec\.latents\.name: job .* has no artifact"):
            load_latents_artifact(attempt.link, LatentsArtifact(job_id=bobs, name="x.npy"))
