"""Two users and an admin against the API on PostgreSQL and Redis: every route that names an
object answers 404 to the other user, every /api/ route 401 to missing, wrong, expired and
revoked tokens, a token past its rate or its streams gets 429 with Retry-After, and hostile
input (broken uploads, NULs where PostgreSQL refuses them, chunked JSON bombs) is a 4xx problem
that stores nothing."""

from __future__ import annotations

import base64
import gzip
import io
import json
import re
import struct
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from api.app import create_app
from api.live import FEED_WAIT_CONFIG
from api.ratelimit import WINDOW_S, shared_redis
from api.stream_slots import TokenLeases
from shared.config import Settings
from shared.db import session_scope
from shared.models import ApiToken, Dataset, utcnow
from shared.storage import open_storage
from tests.data_builders import write_npz, write_zip
from tests.helpers import auth, train_request, user_token


@pytest.fixture
def objects(client: FlaskClient, alice: str, tmp_path: Path) -> dict[str, str]:
    """Alice's job, dataset, token, code bundle and webhook: what bob must not reach."""
    job = client.post("/api/v1/jobs", json=train_request("a"), headers=auth(alice)).get_json()
    data = write_npz(tmp_path / "r.npz", data=np.zeros((10, 2), np.float32)).read_bytes()
    form = {"file": (io.BytesIO(data), "r.npz"), "name": "r"}
    dataset = client.post(
        "/api/v1/datasets", data=form, headers=auth(alice), content_type="multipart/form-data"
    ).get_json()
    token = client.post("/api/v1/tokens", json={"name": "n"}, headers=auth(alice)).get_json()
    package = write_zip(tmp_path / "p.zip", {"p.py": b""}).read_bytes()
    code = client.post(
        "/api/v1/code",
        data={"file": (io.BytesIO(package), "p.zip")},
        headers=auth(alice),
        content_type="multipart/form-data",
    ).get_json()
    webhook = client.post(
        "/api/v1/webhooks", json={"url": "https://hooks.example/hook"}, headers=auth(alice)
    ).get_json()
    return {
        "job_id": job["id"],
        "dataset_id": dataset["id"],
        "token_id": token["id"],
        "code_id": code["id"],
        "webhook_id": webhook["id"],
    }


def _routes(app: Flask, objects: dict[str, str]) -> list[tuple[str, str]]:
    """(method, concrete path) of every /api/v1 route, ids filled with alice's objects."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = rule.rule.replace("<path:name>", "metrics.jsonl").replace("<name:name>", "nobody")
        path = re.sub(r"<(?:id|sha):(\w+)>", lambda m: objects[m.group(1)], path)
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


# --- hostile inputs: each a 4xx problem, nothing stored ------------------------------------

PROBLEM = "application/problem+json"


def _upload(client: FlaskClient, token: str, data: bytes, filename: str, name: str = "d") -> Any:
    form = {"file": (io.BytesIO(data), filename), "name": name}
    return client.post(
        "/api/v1/datasets", data=form, headers=auth(token), content_type="multipart/form-data"
    )


def _stored_uploads(settings: Settings) -> list[str]:
    with session_scope(settings.database_url) as session:
        rows = list(session.scalars(select(Dataset.id)))
    return rows + [info.key for info in open_storage(settings).list("uploads/")]


def _idx_gzip(count: int = 50) -> bytes:
    """A gzipped idx3 file of noise: it compresses little, so cutting it in half leaves the
    header readable and the pixels short."""
    pixels = np.random.default_rng(0).integers(0, 256, count * 28 * 28, dtype=np.uint8)
    return gzip.compress(struct.pack(">IIII", 0x803, count, 28, 28) + pixels.tobytes())


def test_broken_uploads_are_422_problems_that_store_nothing(
    client: FlaskClient, settings: Settings, alice: str, tmp_path: Path
) -> None:
    good = _idx_gzip()
    bad_crc = good[:-8] + (int.from_bytes(good[-8:-4], "little") ^ 1).to_bytes(4, "little")
    npz = write_npz(tmp_path / "r.npz", data=np.zeros((10, 2), np.float32)).read_bytes()
    cases = [
        (good[: len(good) // 2], "t-idx3-ubyte.gz", "d", "file", "cannot be read"),
        (bad_crc + good[-4:], "t-idx3-ubyte.gz", "d", "file", "CRC"),
        (npz, "r.npz", "a\0b", "name", "control characters"),
    ]
    for data, filename, name, field, reason in cases:
        response = _upload(client, alice, data, filename, name)
        assert response.status_code == 422, (filename, response.get_json())
        assert response.mimetype == PROBLEM
        assert response.get_json()["errors"][0]["path"] == field
        assert reason in response.get_json()["errors"][0]["message"]
    assert _stored_uploads(settings) == []
    assert _upload(client, alice, good, "t-idx3-ubyte.gz").status_code == 201, "the intact one"


def test_json_nested_deep_or_too_long_is_refused_when_sent_chunked(
    client: FlaskClient, alice: str
) -> None:
    """Without a Content-Length the body is still read (to the limit) and checked before it
    is parsed: a 100,000-deep array would otherwise recurse the parser into a 500."""
    headers = {**auth(alice), "Content-Type": "application/json", "Transfer-Encoding": "chunked"}
    chunked = {"wsgi.input_terminated": True}  # what gunicorn sets for a chunked body
    for body, status in ((b"[" * 100_000 + b"]" * 100_000, 400), (b"[" * 2**21, 413)):
        response = client.post(
            "/api/v1/jobs",
            input_stream=io.BytesIO(body),
            headers=headers,
            environ_overrides=chunked,
        )
        assert response.status_code == status and response.mimetype == PROBLEM
        assert response.request.content_length is None


def test_a_nul_in_an_artifact_name_or_a_cursor_is_a_4xx_before_any_query(
    client: FlaskClient, alice: str
) -> None:
    job = client.post("/api/v1/jobs", json=train_request("a"), headers=auth(alice)).get_json()
    for name in ("metrics%00.jsonl", "%00", "samples/..%2Fx"):
        response = client.get(f"/api/v1/jobs/{job['id']}/artifacts/{name}", headers=auth(alice))
        assert response.status_code == 404 and response.mimetype == PROBLEM, name
    hostile_ids = ("a" * 31 + "\0", "x'; --", 7, "[" * 150)
    for job_id in hostile_ids:
        raw = json.dumps(["2030-01-01T00:00:00+00:00", job_id]).encode()
        cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        response = client.get(f"/api/v1/jobs?cursor={cursor}", headers=auth(alice))
        assert response.status_code == 400 and response.mimetype == PROBLEM, job_id
        assert response.get_json()["errors"][0]["path"] == "cursor"
    assert client.get("/api/v1/jobs", headers=auth(alice)).get_json()["jobs"][0]["id"] == job["id"]


def test_redirects_and_routing_errors_are_problems(client: FlaskClient, alice: str) -> None:
    for path, location in (("/ui", "/ui/"), ("/api/v1//jobs", "/api/v1/jobs")):
        response = client.get(path, headers=auth(alice))
        assert response.status_code == 308 and response.mimetype == PROBLEM, path
        assert response.headers["Location"].endswith(location)
    missing = client.get("/api/v1/nothing", headers=auth(alice))
    assert missing.status_code == 404 and missing.mimetype == PROBLEM
    wrong = client.delete("/api/v1/jobs", headers=auth(alice))
    assert wrong.status_code == 405 and wrong.mimetype == PROBLEM
    assert {"GET", "POST"} <= set(wrong.headers["Allow"].replace(" ", "").split(","))


def test_a_token_past_its_streams_over_two_processes_gets_429_until_one_ends_or_runs_out(
    settings: Settings,
) -> None:
    processes = []
    for _ in range(2):  # two API processes: each its own slots, one Redis
        app = create_app(settings.with_(streams_per_token=2))
        app.config[FEED_WAIT_CONFIG] = lambda _seconds: None  # the job stays queued
        processes.append(app)
    first, second = (app.test_client() for app in processes)
    alice, bob = user_token(settings, "alice"), user_token(settings, "bob")
    job = first.post("/api/v1/jobs", json=train_request("a"), headers=auth(alice)).get_json()
    bobs = first.post("/api/v1/jobs", json=train_request("b"), headers=auth(bob)).get_json()
    stream = {"Accept": "text/event-stream"}

    def open_stream(client: FlaskClient, token: str, job_id: str) -> Any:
        url = f"/api/v1/jobs/{job_id}/events"
        return client.get(url, headers={**auth(token), **stream}, buffered=False)

    # Streams of the test client stay in their request context until closed, so they are
    # closed last opened first.
    held = [open_stream(first, alice, job["id"]), open_stream(second, alice, job["id"])]
    assert [r.status_code for r in held] == [200, 200]
    refused = open_stream(first, alice, job["id"])
    assert refused.status_code == 429 and refused.mimetype == "application/problem+json"
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.get_json()["limit"] == {"setting": "GANFORGE_STREAMS_PER_TOKEN", "value": 2}
    bobs_stream = open_stream(first, bob, bobs["id"])
    assert bobs_stream.status_code == 200, "per token"
    bobs_stream.close()
    held.pop().close()  # one of alice's streams ends: either process admits her again
    held.append(open_stream(first, alice, job["id"]))
    assert held[-1].status_code == 200
    for response in reversed(held):
        response.close()
    # A process killed with its streams open gives nothing back: its leases run out instead.
    processes[1].extensions["ganforge.stream_leases"] = TokenLeases(
        shared_redis(settings.broker_url), lease_s=0.2
    )
    killed = [open_stream(second, alice, job["id"]) for _ in range(2)]
    assert [r.status_code for r in killed] == [200, 200]
    assert open_stream(first, alice, job["id"]).status_code == 429
    time.sleep(0.3)
    after = open_stream(first, alice, job["id"])
    assert after.status_code == 200
    for response in [after, *reversed(killed)]:
        response.close()


def test_a_renewed_stream_lease_outlives_its_first_term_and_one_lost_comes_back(
    settings: Settings,
) -> None:
    leases = TokenLeases(shared_redis(settings.broker_url), lease_s=0.2)
    token = uuid.uuid4().hex
    lease = leases.take(token, limit=1)
    assert lease is not None and leases.take(token, limit=1) is None
    key = leases.key(token)
    first_end = leases.client.zscore(key, lease)
    time.sleep(0.05)
    leases.renew(token, lease)
    assert leases.client.zscore(key, lease) > first_end, "renewed from Redis's clock"
    time.sleep(0.3)
    assert leases.held(token) == 0, "not renewed: it ran out"
    leases.renew(token, lease)  # a stream whose process was paused past its lease
    assert leases.held(token) == 1 and leases.take(token, limit=1) is None
    leases.give_back(token, lease)
    assert leases.held(token) == 0
