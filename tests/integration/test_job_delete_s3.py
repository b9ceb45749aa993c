"""Deleting a job against the real S3 server (moto) and PostgreSQL: its objects leave the
bucket, rows or not, and another job's stay."""

from __future__ import annotations

from flask.testing import FlaskClient

from shared.config import Settings
from shared.storage import open_storage
from shared.storage.keys import LOG_NAME, artifact_key, job_prefix
from tests.helpers import auth
from tests.unit.storage_rows import finished_job


def test_deleting_a_job_removes_its_objects_from_the_bucket_and_leaves_another_jobs(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    store = open_storage(settings)
    doomed = finished_job(settings, "alice", 100, 200)
    kept = finished_job(settings, "alice", 300)
    store.put(artifact_key(doomed, LOG_NAME), b"written, its row never was")
    assert len(store.list(job_prefix(doomed))) == 3

    deleted = client.delete(f"/api/v1/jobs/{doomed}", headers=auth(alice))

    assert deleted.status_code == 204
    assert store.list(job_prefix(doomed)) == []
    assert [(o.key, o.size) for o in store.list(job_prefix(kept))] == [
        (artifact_key(kept, "checkpoints/step-000001.pt"), 300)
    ]
    assert client.get(f"/api/v1/jobs/{doomed}", headers=auth(alice)).status_code == 404
    usage = client.get("/api/v1/usage", headers=auth(alice)).get_json()
    assert usage["users"][0]["artifacts_bytes"] == 300
