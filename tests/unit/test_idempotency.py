"""`Idempotency-Key`: a resent submission or upload returns the first answer and creates
nothing new; the same key with a different request is refused."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.data_builders import write_npz
from tests.helpers import auth, train_request


def _post_job(client: FlaskClient, token: str, key: str, name: str = "once") -> TestResponse:
    headers = {**auth(token), "Idempotency-Key": key}
    return client.post("/api/v1/jobs", json=train_request(name), headers=headers)


def test_a_resent_submission_returns_the_first_job_and_creates_no_other(
    client: FlaskClient, alice: str, bob: str
) -> None:
    first = _post_job(client, alice, "a3f1c2")
    again = _post_job(client, alice, "a3f1c2")
    assert first.status_code == again.status_code == 201
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    listed = client.get("/api/v1/jobs", headers=auth(alice)).get_json()["jobs"]
    assert [j["id"] for j in listed] == [first.get_json()["id"]]
    # Keys belong to their user: bob's "a3f1c2" is a different key.
    assert _post_job(client, bob, "a3f1c2").get_json()["id"] != first.get_json()["id"]


def test_a_key_reused_for_another_request_is_refused(client: FlaskClient, alice: str) -> None:
    assert _post_job(client, alice, "k-1", name="one").status_code == 201
    reused = _post_job(client, alice, "k-1", name="two")
    assert reused.status_code == 422
    assert reused.get_json()["errors"][0]["path"] == "Idempotency-Key"
    bad = _post_job(client, alice, "has space")
    assert bad.status_code == 400 and "printable" in bad.get_json()["detail"]


def test_a_resent_upload_returns_the_first_dataset(
    client: FlaskClient, alice: str, tmp_path: Path
) -> None:
    data = write_npz(tmp_path / "ring.npz", data=np.zeros((10, 2), np.float32)).read_bytes()

    def send(payload: bytes, **fields: str) -> TestResponse:
        form = {"file": (io.BytesIO(payload), "ring.npz"), "name": "ring", **fields}
        headers = {**auth(alice), "Idempotency-Key": "upload-7"}
        return client.post(
            "/api/v1/datasets", data=form, headers=headers, content_type="multipart/form-data"
        )

    first, again = send(data), send(data)
    assert first.status_code == again.status_code == 201
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(client.get("/api/v1/datasets", headers=auth(alice)).get_json()["datasets"]) == 1
    different = send(data + b"\0")
    assert different.status_code == 422
    # The same bytes asking for another storage form is another request, not a retry.
    assert send(data, shards="false").status_code == 422
