"""Two users and an admin against the API on PostgreSQL and Redis: every route that names an
object answers 404 to the other user, every /api/ route 401 to missing, wrong, expired and
revoked tokens, and a token past its rate gets 429 with Retry-After."""

from __future__ import annotations

import io
import re
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from api.app import create_app
from api.ratelimit import WINDOW_S
from shared.config import Settings
from shared.db import session_scope
from shared.models import ApiToken, utcnow
from tests.data_builders import write_npz
from tests.helpers import auth, train_request, user_token


@pytest.fixture
def objects(client: FlaskClient, alice: str, tmp_path: Path) -> dict[str, str]:
    """Alice's job, dataset and token: what bob must not reach."""
    job = client.post("/api/v1/jobs", json=train_request("a"), headers=auth(alice)).get_json()
    data = write_npz(tmp_path / "r.npz", data=np.zeros((10, 2), np.float32)).read_bytes()
    form = {"file": (io.BytesIO(data), "r.npz"), "name": "r"}
    dataset = client.post(
        "/api/v1/datasets", data=form, headers=auth(alice), content_type="multipart/form-data"
    ).get_json()
    token = client.post("/api/v1/tokens", json={"name": "n"}, headers=auth(alice)).get_json()
    return {"job_id": job["id"], "dataset_id": dataset["id"], "token_id": token["id"]}


def _routes(app: Flask, objects: dict[str, str]) -> list[tuple[str, str]]:
    """(method, concrete path) of every /api/v1 route, ids filled with alice's objects."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = rule.rule.replace("<path:name>", "metrics.jsonl").replace("<name:name>", "nobody")
        path = re.sub(r"<id:(\w+)>", lambda m: objects[m.group(1)], path)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((method, path))
    return found


def test_every_route_refuses_missing_wrong_expired_and_revoked_tokens(
    app: Flask, client: FlaskClient, settings: Settings, alice: str, objects: dict[str, str]
) -> None:
    expired = client.post("/api/v1/tokens", json={"name": "e"}, headers=auth(alice)).get_json()
    revoked = client.post("/api/v1/tokens", json={"name": "r"}, headers=auth(alice)).get_json()
    with session_scope(settings.database_url) as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.id == expired["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    client.delete(f"/api/v1/tokens/{revoked['id']}", headers=auth(alice))
    public = {("GET", "/api/v1/pool"), ("GET", "/api/v1/openapi.json"), ("GET", "/api/v1/docs")}
    routes = [r for r in _routes(app, objects) if r not in public]
    assert len(routes) >= 15
    for headers in (
        {},
        auth("gf_wrong"),
        auth(expired["token"]),
        auth(revoked["token"]),
        {"Authorization": "Basic x"},
    ):
        for method, path in routes:
            response = client.open(path, method=method, headers=headers)
            assert response.status_code == 401, (method, path, headers, response.get_json())
            assert response.mimetype == "application/problem+json"
            sent = headers.get("Authorization", "").partition(" ")[2]
            assert not sent or sent not in response.get_data(as_text=True), "token echoed"


def test_every_route_naming_alices_objects_is_404_to_bob(
    app: Flask, client: FlaskClient, bob: str, objects: dict[str, str]
) -> None:
    named = [(m, p) for m, p in _routes(app, objects) if any(v in p for v in objects.values())]
    assert len(named) >= 8
    for method, path in named:
        bodies = {"/priority": {"priority": 1}, "/share": {"shared": True}}
        body = next((b for end, b in bodies.items() if path.endswith(end)), None)
        response = client.open(path, method=method, headers=auth(bob), json=body)
        assert response.status_code == 404, (method, path, response.get_json())


def test_a_token_past_its_rate_gets_429_with_retry_after(settings: Settings) -> None:
    client = create_app(settings.with_(rate_limit_per_minute=5)).test_client()
    token = user_token(settings, "busy")
    into_window = time.time() % WINDOW_S
    if into_window > WINDOW_S - 3:  # all seven in one counting window
        time.sleep(WINDOW_S - into_window + 0.1)
    codes = [client.get("/api/v1/jobs", headers=auth(token)).status_code for _ in range(7)]
    assert codes[:5] == [200] * 5 and codes[5:] == [429, 429]
    refused = client.get("/api/v1/jobs", headers=auth(token))
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "more than 5 requests" in refused.get_json()["detail"]
    other = user_token(settings, "calm")
    assert client.get("/api/v1/jobs", headers=auth(other)).status_code == 200, "per token"
