"""Artifacts written through the storage interface to S3, listed and downloaded over HTTP."""

import hashlib

import pytest
from flask.testing import FlaskClient

from shared.config import Settings
from shared.db import session_scope
from shared.states import JobState, transition
from shared.storage import open_storage
from tests.helpers import auth, train_request
from worker.artifacts import FencedError, put_artifact


def test_artifact_rows_list_and_download_streamed_or_presigned(
    client: FlaskClient, alice: str, bob: str, settings: Settings
) -> None:
    import requests

    job = client.post("/api/v1/jobs", json=train_request(), headers=auth(alice)).get_json()
    data = b"\x89PNG fake grid bytes" * 1000
    key = put_artifact(
        settings.database_url,
        open_storage(settings),
        job["id"],
        "samples/step-000020.png",
        "samples",
        data,
        step=20,
    )
    assert key == f"jobs/{job['id']}/samples/step-000020.png"
    listed = client.get(f"/api/v1/jobs/{job['id']}/artifacts", headers=auth(alice)).get_json()
    (row,) = listed["artifacts"]
    assert row["name"] == "samples/step-000020.png" and row["step"] == 20
    assert row["size"] == len(data) and row["sha256"] == hashlib.sha256(data).hexdigest()

    url = f"/api/v1/jobs/{job['id']}/artifacts/samples/step-000020.png"
    redirected = client.get(url, headers=auth(alice))
    assert redirected.status_code == 302
    assert requests.get(redirected.headers["Location"], timeout=10).content == data

    streamed = client.get(url + "?redirect=false", headers=auth(alice))
    assert streamed.status_code == 200 and streamed.mimetype == "image/png"
    assert streamed.data == data
    assert client.get(url, headers=auth(bob)).status_code == 404


def test_readiness_reports_each_real_service(client: FlaskClient) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.get_json()
    assert ready.get_json()["checks"] == {"database": "ok", "broker": "ok", "storage": "ok"}


def test_presigned_urls_are_signed_for_the_public_endpoint_when_one_is_set(
    settings: Settings,
) -> None:
    import requests

    internal = settings.s3_endpoint_url
    assert internal is not None and "127.0.0.1" in internal
    public = internal.replace("127.0.0.1", "localhost")
    store = open_storage(settings.with_(s3_public_endpoint_url=public))
    store.put("jobs/" + "a" * 32 + "/log.txt", b"hello")
    url = store.url("jobs/" + "a" * 32 + "/log.txt")
    assert url is not None and url.startswith(public)
    assert requests.get(url, timeout=10).content == b"hello"


def test_a_superseded_attempt_can_write_no_artifact(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    job_id = client.post("/api/v1/jobs", json=train_request(), headers=auth(alice)).get_json()["id"]
    with session_scope(settings.database_url) as session:
        transition(session, job_id, JobState.QUEUED, JobState.SCHEDULED, "placed", attempt=1)
        transition(session, job_id, JobState.SCHEDULED, JobState.RUNNING, "go", attempt=1)
        transition(session, job_id, JobState.RUNNING, JobState.LOST, "node dead", attempt=1)
        transition(session, job_id, JobState.LOST, JobState.QUEUED, "requeued")
        transition(session, job_id, JobState.QUEUED, JobState.SCHEDULED, "placed", attempt=2)
        transition(session, job_id, JobState.SCHEDULED, JobState.RUNNING, "go", attempt=2)
    store = open_storage(settings)
    name = "checkpoints/step-000020.pt"

    with pytest.raises(FencedError, match=r"attempt 1 of job \w+ was superseded"):
        put_artifact(settings.database_url, store, job_id, name, "checkpoint", b"zombie", attempt=1)
    assert store.list(f"jobs/{job_id}/") == [], "the zombie's bytes never reached the store"

    put_artifact(settings.database_url, store, job_id, name, "checkpoint", b"current", attempt=2)
    listed = client.get(f"/api/v1/jobs/{job_id}/artifacts", headers=auth(alice)).get_json()
    assert [a["name"] for a in listed["artifacts"]] == [name]
