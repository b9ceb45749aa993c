"""GET /api/v1/usage and the storage quota, on the embedded defaults (SQLite, local folder)."""

from __future__ import annotations

import io

from flask.testing import FlaskClient

from api.app import create_app
from shared.config import Settings
from shared.storage import open_storage
from shared.storage.keys import checkpoint_name
from tests.helpers import auth, train_request, user_token
from tests.unit.job_factories import running_job
from tests.unit.storage_rows import code_rows, dataset_row, finished_job
from worker.artifacts import put_artifact

PROBLEM = "application/problem+json"


def usage(client: FlaskClient, token: str, every_user: bool = False) -> dict:
    answer = client.get("/api/v1/usage" + ("?all=true" if every_user else ""), headers=auth(token))
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def test_usage_counts_artifacts_datasets_and_code_and_names_the_largest_jobs(
    client: FlaskClient, alice: str, bob: str, settings: Settings
) -> None:
    small = finished_job(settings, "alice", 100)
    large = finished_job(settings, "alice", 300, 200)
    finished_job(settings, "bob", 5000)
    dataset_row(settings, "alice", 40)
    code_rows(settings, ["alice", "bob"], 7)  # one archive, held by both

    report = usage(client, alice)

    assert report["users"] == [
        {
            "user": "alice",
            "total_bytes": 100 + 500 + 40 + 7,
            "artifacts_bytes": 600,
            "datasets_bytes": 40,
            "code_bytes": 7,
            "quota_bytes": None,
            "over_quota": False,
        }
    ]
    biggest = [(job["id"], job["artifacts"], job["bytes"]) for job in report["largest_jobs"]]
    assert biggest == [(large, 2, 500), (small, 1, 100)], "bob's job is not alice's"
    (bobs,) = usage(client, bob)["users"]
    assert (bobs["artifacts_bytes"], bobs["code_bytes"]) == (5000, 7), "each holder pays once"


def test_every_users_usage_is_for_admins(
    client: FlaskClient, alice: str, bob: str, settings: Settings
) -> None:
    finished_job(settings, "alice", 10)
    finished_job(settings, "bob", 20)
    refused = client.get("/api/v1/usage?all=true", headers=auth(alice))
    assert refused.status_code == 403 and refused.mimetype == PROBLEM
    root = user_token(settings, "root", admin=True)

    report = usage(client, root, every_user=True)

    totals = [(user["user"], user["total_bytes"]) for user in report["users"]]
    assert totals == [("bob", 20), ("alice", 10), ("root", 0)]
    assert [job["owner"] for job in report["largest_jobs"]] == ["bob", "alice"]
    bad = client.get("/api/v1/usage?all=maybe", headers=auth(alice))
    assert bad.status_code == 400 and bad.get_json()["errors"][0]["path"] == "all"


def test_a_user_at_their_quota_is_refused_new_jobs_and_uploads_naming_the_quota(
    alice: str, bob: str, settings: Settings
) -> None:
    client = create_app(settings.with_(storage_quota_bytes=500)).test_client()
    full = finished_job(settings, "alice", 600)

    refused = client.post("/api/v1/jobs", json=train_request("more"), headers=auth(alice))

    assert refused.status_code == 413 and refused.mimetype == PROBLEM
    problem = refused.get_json()
    assert (problem["quota_bytes"], problem["usage_bytes"]) == (500, 600)
    assert "quota is 500 B (500 bytes)" in problem["detail"]
    assert "you store 600 B" in problem["detail"] and full[:8] in problem["detail"]
    assert "ganforge delete" in problem["detail"]
    for route in ("/api/v1/datasets", "/api/v1/code"):
        form = {"file": (io.BytesIO(b"PK"), "data.zip"), "name": "d"}
        upload = client.post(
            route, data=form, headers=auth(alice), content_type="multipart/form-data"
        )
        assert upload.status_code == 413, route
        assert upload.get_json()["title"] == "Storage quota exceeded", route
    under = client.post("/api/v1/jobs", json=train_request("b"), headers=auth(bob))
    assert under.status_code == 201, "bob stores nothing"


def test_a_running_jobs_checkpoints_are_stored_past_the_quota(
    alice: str, settings: Settings
) -> None:
    client = create_app(settings.with_(storage_quota_bytes=10)).test_client()
    job_id = running_job(settings, "alice")
    store = open_storage(settings)
    for step in (1, 2):
        name = checkpoint_name(step)
        put_artifact(settings.database_url, store, job_id, name, "checkpoint", b"x" * 8, step)

    listed = client.get(f"/api/v1/jobs/{job_id}/artifacts", headers=auth(alice)).get_json()

    assert [a["size"] for a in listed["artifacts"]] == [8, 8]
    assert usage(client, alice)["users"][0]["over_quota"] is True


def test_an_admin_sets_a_users_storage_quota_over_the_default(
    alice: str, settings: Settings
) -> None:
    client = create_app(settings.with_(storage_quota_bytes=50)).test_client()
    root = user_token(settings, "root", admin=True)
    finished_job(settings, "alice", 60)
    route = "/api/v1/admin/users/alice/storage-quota"

    lifted = client.put(route, json={"storage_quota_bytes": 0}, headers=auth(root))

    assert lifted.get_json() == {
        "user": "alice",
        "storage_quota_bytes": 0,
        "effective_quota_bytes": None,
    }
    assert client.post("/api/v1/jobs", json=train_request(), headers=auth(alice)).status_code == 201
    back = client.put(route, json={"storage_quota_bytes": None}, headers=auth(root))
    assert back.get_json()["effective_quota_bytes"] == 50
    assert client.post("/api/v1/jobs", json=train_request(), headers=auth(alice)).status_code == 413
    raised = client.put(route, json={"storage_quota_bytes": 1000}, headers=auth(root))
    assert raised.get_json()["effective_quota_bytes"] == 1000
    assert usage(client, alice)["users"][0]["quota_bytes"] == 1000


def test_setting_a_storage_quota_is_for_admins_and_checks_the_value(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    root = user_token(settings, "root", admin=True)
    route = "/api/v1/admin/users/alice/storage-quota"
    mine = client.put(route, json={"storage_quota_bytes": 0}, headers=auth(alice))
    assert mine.status_code == 403
    for body in ({"storage_quota_bytes": -1}, {"storage_quota_bytes": "1G"}, {}):
        bad = client.put(route, json=body, headers=auth(root))
        assert bad.status_code == 422 and bad.mimetype == PROBLEM, body
        assert bad.get_json()["errors"][0]["path"] == "storage_quota_bytes", body
    extra = client.put(route, json={"storage_quota_bytes": 1, "x": 1}, headers=auth(root))
    assert extra.status_code == 422 and extra.get_json()["errors"][0]["path"] == "x"
    nobody = client.put(
        "/api/v1/admin/users/nobody/storage-quota",
        json={"storage_quota_bytes": 1},
        headers=auth(root),
    )
    assert nobody.status_code == 404
