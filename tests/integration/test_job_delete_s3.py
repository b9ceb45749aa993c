"""Deleting a job, and collecting orphans, against the real S3 server (moto) and PostgreSQL:
the deleted job's objects leave the bucket, rows or not, and another job's stay."""

from __future__ import annotations

from datetime import timedelta

from flask.testing import FlaskClient

from shared.config import Settings
from shared.models import new_id, utcnow
from shared.orphans import collect_orphans
from shared.storage import open_storage
from shared.storage.keys import LOG_NAME, artifact_key, job_prefix
from tests.helpers import auth
from tests.unit.storage_rows import finished_job

HOUR = 3600.0


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


def test_the_orphan_collector_reads_ages_from_the_bucket_and_spares_recorded_objects(
    alice: str, settings: Settings
) -> None:
    store = open_storage(settings)
    finished = finished_job(settings, "alice", 100)
    stray = artifact_key(new_id(), LOG_NAME)
    store.put(stray, b"no job has this")
    assert all(info.modified is not None for info in store.list("jobs/"))

    young = collect_orphans(settings.database_url, store, HOUR)
    two_hours_on = utcnow() + timedelta(hours=2)
    later = collect_orphans(settings.database_url, store, HOUR, now=two_hours_on)

    assert young == [] and later == [stray]
    assert [info.key for info in store.list("jobs/")] == [
        artifact_key(finished, "checkpoints/step-000001.pt")
    ]
