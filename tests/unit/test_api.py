"""The HTTP contract against the embedded defaults (SQLite); the same runs on PostgreSQL in
tests/integration."""

from flask.testing import FlaskClient

from shared.config import Settings
from shared.db import session_scope
from shared.jobs.reports import record_artifact
from tests.helpers import auth, train_request, user_token

PROBLEM = "application/problem+json"


def submit(client: FlaskClient, token: str, **changes) -> dict:
    response = client.post("/api/v1/jobs", json=train_request(**changes), headers=auth(token))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_submit_returns_the_queued_job_and_its_location(client: FlaskClient, alice: str) -> None:
    response = client.post("/api/v1/jobs", json=train_request("first"), headers=auth(alice))
    assert response.status_code == 201
    job = response.get_json()
    assert response.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    assert job["state"] == "queued" and job["kind"] == "train" and job["name"] == "first"
    assert job["attempt"] == 1 and job["created_at"].endswith("+00:00")
    assert "task_id" not in job, "broker ids stay internal"
    fetched = client.get(job["links"]["self"], headers=auth(alice)).get_json()
    assert fetched["id"] == job["id"] and fetched["spec"]["latent"]["prior"] == "gaussian"


def test_requests_without_a_valid_token_are_refused(client: FlaskClient) -> None:
    for headers in ({}, {"Authorization": "Basic abc"}, auth("gf_not-a-token")):
        response = client.get("/api/v1/jobs", headers=headers)
        assert response.status_code == 401
        assert response.mimetype == PROBLEM
        assert (
            "Bearer" in response.get_json()["detail"]
            or "not valid" in response.get_json()["detail"]
        )


def test_bad_spec_names_each_field(client: FlaskClient, alice: str) -> None:
    body = train_request(latent={"dim": -1}, train={"steps": 10, "colour": "red"})
    response = client.post("/api/v1/jobs", json=body, headers=auth(alice))
    assert response.status_code == 422
    assert response.mimetype == PROBLEM
    paths = {e["path"] for e in response.get_json()["errors"]}
    assert paths == {"spec.latent.dim", "spec.train.colour"}


def test_malformed_json_is_a_400_problem(client: FlaskClient, alice: str) -> None:
    response = client.post(
        "/api/v1/jobs",
        data="{not json",
        headers={**auth(alice), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.mimetype == PROBLEM
    assert "JSON" in response.get_json()["detail"]


def test_wrong_types_in_the_envelope(client: FlaskClient, alice: str) -> None:
    response = client.post(
        "/api/v1/jobs", json={"kind": "train", "name": 5, "spec": []}, headers=auth(alice)
    )
    assert response.status_code == 422
    assert {e["path"] for e in response.get_json()["errors"]} == {"name", "spec"}


def test_other_users_jobs_are_not_found(client: FlaskClient, alice: str, bob: str) -> None:
    job = submit(client, alice)
    for path in ("", "/events", "/artifacts"):
        response = client.get(f"/api/v1/jobs/{job['id']}{path}", headers=auth(bob))
        assert response.status_code == 404 and response.mimetype == PROBLEM
    assert client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=auth(bob)).status_code == 404
    assert client.get("/api/v1/jobs", headers=auth(bob)).get_json()["jobs"] == []


def test_unknown_job_and_unknown_route_are_problems(client: FlaskClient, alice: str) -> None:
    assert client.get("/api/v1/jobs/nope", headers=auth(alice)).status_code == 404
    response = client.get("/api/v1/nothing-here", headers=auth(alice))
    assert response.status_code == 404 and response.mimetype == PROBLEM
    response = client.delete("/api/v1/jobs", headers=auth(alice))
    assert response.status_code == 405 and response.mimetype == PROBLEM


def test_list_is_newest_first_and_pages_with_a_cursor(client: FlaskClient, alice: str) -> None:
    ids = [submit(client, alice, name=f"job{i}")["id"] for i in range(5)]
    first = client.get("/api/v1/jobs?limit=2", headers=auth(alice)).get_json()
    assert [j["id"] for j in first["jobs"]] == ids[::-1][:2]
    second = client.get(
        f"/api/v1/jobs?limit=2&cursor={first['next_cursor']}", headers=auth(alice)
    ).get_json()
    third = client.get(
        f"/api/v1/jobs?limit=2&cursor={second['next_cursor']}", headers=auth(alice)
    ).get_json()
    seen = [j["id"] for page in (first, second, third) for j in page["jobs"]]
    assert seen == ids[::-1]
    assert third["next_cursor"] is None


def test_list_filters_and_rejects_bad_parameters(client: FlaskClient, alice: str) -> None:
    submit(client, alice)
    queued = client.get("/api/v1/jobs?state=queued&kind=train", headers=auth(alice)).get_json()
    assert len(queued["jobs"]) == 1
    assert client.get("/api/v1/jobs?state=running", headers=auth(alice)).get_json()["jobs"] == []
    for query in ("state=sleeping", "kind=paint", "limit=0", "limit=abc", "cursor=%%%"):
        response = client.get(f"/api/v1/jobs?{query}", headers=auth(alice))
        assert response.status_code == 400, query
        assert response.mimetype == PROBLEM
        assert response.get_json()["errors"][0]["path"] == query.split("=")[0]


def test_cancel_of_a_queued_job_is_immediate_and_idempotent(
    client: FlaskClient, alice: str
) -> None:
    job = submit(client, alice)
    response = client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=auth(alice))
    assert response.status_code == 202 and response.get_json()["state"] == "cancelled"
    again = client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=auth(alice))
    assert again.status_code == 202 and again.get_json()["state"] == "cancelled"
    events = client.get(f"/api/v1/jobs/{job['id']}/events", headers=auth(alice)).get_json()
    assert [(e["from"], e["to"]) for e in events["events"]] == [
        (None, "queued"),
        ("queued", "cancelled"),
    ]
    assert all(e["at"] for e in events["events"])


def test_sampling_must_name_one_of_your_training_jobs(
    client: FlaskClient, alice: str, bob: str
) -> None:
    job = submit(client, alice)
    body = {"kind": "sample", "name": "s", "spec": {"job_id": job["id"], "seeds": [1]}}
    refused = client.post("/api/v1/jobs", json=body, headers=auth(bob))
    assert refused.status_code == 422 and refused.mimetype == PROBLEM
    assert refused.get_json()["errors"] == [
        {"path": "spec.job_id", "message": f"no job {job['id']!r} among your jobs"}
    ]
    sampling = client.post("/api/v1/jobs", json=body, headers=auth(alice))
    assert sampling.status_code == 201
    of_a_sample = {**body, "spec": {"job_id": sampling.get_json()["id"], "seeds": [1]}}
    refused = client.post("/api/v1/jobs", json=of_a_sample, headers=auth(alice))
    assert "name a train or script job" in refused.get_json()["errors"][0]["message"]


def test_a_sampling_step_must_name_a_checkpoint_the_job_has(
    client: FlaskClient, settings: Settings, alice: str
) -> None:
    job = submit(client, alice)
    with session_scope(settings.database_url) as session:
        record_artifact(
            session, job["id"], name="checkpoints/step-000100.pt", kind="checkpoint",
            key="k", size=1, sha256="0" * 64, step=100,
        )  # fmt: skip
    body = {"kind": "sample", "name": "s", "spec": {"job_id": job["id"], "step": 50, "seeds": [1]}}
    refused = client.post("/api/v1/jobs", json=body, headers=auth(alice))
    assert refused.status_code == 422
    assert refused.get_json()["errors"] == [
        {"path": "spec.step", "message": f"job {job['id']} has no checkpoint at step 50 (100)"}
    ]
    body["spec"]["step"] = 100
    assert client.post("/api/v1/jobs", json=body, headers=auth(alice)).status_code == 201


def test_unknown_artifact_is_a_404_problem(client: FlaskClient, alice: str) -> None:
    job = submit(client, alice)
    response = client.get(f"/api/v1/jobs/{job['id']}/artifacts/grid.png", headers=auth(alice))
    assert response.status_code == 404 and response.mimetype == PROBLEM


def test_health_and_readiness(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.get_json()
    assert ready.get_json()["checks"] == {"database": "ok", "broker": "ok", "storage": "ok"}


def test_admins_see_and_cancel_every_users_jobs_and_users_only_their_own(
    client: FlaskClient, alice: str, bob: str, settings: Settings
) -> None:
    admin = user_token(settings, "root", admin=True)
    job_id = client.post("/api/v1/jobs", json=train_request(), headers=auth(alice)).get_json()["id"]
    assert client.get("/api/v1/jobs?all=true", headers=auth(bob)).status_code == 403
    listed = client.get("/api/v1/jobs?all=true", headers=auth(admin)).get_json()["jobs"]
    assert [job["id"] for job in listed] == [job_id]
    assert client.get("/api/v1/jobs", headers=auth(admin)).get_json()["jobs"] == []
    assert client.get(f"/api/v1/jobs/{job_id}", headers=auth(admin)).status_code == 200
    cancelled = client.post(f"/api/v1/jobs/{job_id}/cancel", headers=auth(admin))
    assert cancelled.get_json()["state"] == "cancelled"


def test_the_pool_is_public_and_its_admin_routes_are_not(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    client.post("/api/v1/jobs", json=train_request(), headers=auth(alice))
    pool = client.get("/api/v1/pool", headers=auth(alice)).get_json()
    assert pool["nodes"] == [] and [job["owner"] for job in pool["queue"]] == ["alice"]
    assert client.post("/api/v1/admin/nodes/x/drain", headers=auth(alice)).status_code == 403
    admin = user_token(settings, "root", admin=True)
    missing = client.post("/api/v1/admin/nodes/x/drain", headers=auth(admin))
    assert missing.status_code == 404 and missing.get_json()["detail"] == "no node named 'x'"
    quota = client.put(
        "/api/v1/admin/users/alice/quota", json={"max_devices": -1}, headers=auth(admin)
    )
    assert quota.status_code == 422 and quota.get_json()["errors"][0]["path"] == "max_devices"
    ok = client.put(
        "/api/v1/admin/users/alice/quota", json={"max_queued_jobs": 1}, headers=auth(admin)
    )
    assert ok.get_json() == {"user": "alice", "max_devices": None, "max_queued_jobs": 1}
    over = client.post("/api/v1/jobs", json=train_request(), headers=auth(alice))
    assert over.status_code == 429 and "your quota is 1" in over.get_json()["detail"]
