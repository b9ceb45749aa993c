"""Tokens: several per user, named, with an expiry, revocable by their owner or an admin;
only a hash is stored and each use is recorded (at most once a minute)."""

from __future__ import annotations

from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import select, update

from shared.config import Settings
from shared.db import session_scope
from shared.models import ApiToken, utcnow
from shared.users import hash_token
from tests.helpers import auth, user_token


def _create(client: FlaskClient, token: str, **body: object) -> dict:
    response = client.post("/api/v1/tokens", json=body, headers=auth(token))
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def test_a_user_holds_several_named_tokens_and_only_their_hashes_are_stored(
    client: FlaskClient, settings: Settings, alice: str
) -> None:
    laptop = _create(client, alice, name="laptop", expires_in_days=30)
    assert laptop["token"].startswith("gf_") and laptop["state"] == "active"
    assert laptop["expires_at"] is not None and laptop["owner"] == "alice"
    assert client.get("/api/v1/jobs", headers=auth(laptop["token"])).status_code == 200
    listed = client.get("/api/v1/tokens", headers=auth(alice)).get_json()["tokens"]
    assert {t["name"] for t in listed} == {"laptop", "test"}
    assert all("token" not in t for t in listed), "a token's value is shown only once"
    with session_scope(settings.database_url) as session:
        stored = session.scalars(select(ApiToken.token_hash)).all()
    assert hash_token(laptop["token"]) in stored and laptop["token"] not in stored
    used = next(t for t in listed if t["name"] == "laptop")
    assert used["last_used_at"] is not None


def test_revoked_and_expired_tokens_are_refused_with_the_reason(
    client: FlaskClient, settings: Settings, alice: str
) -> None:
    ci = _create(client, alice, name="ci")
    response = client.delete(f"/api/v1/tokens/{ci['id']}", headers=auth(alice))
    assert response.status_code == 200 and response.get_json()["state"] == "revoked"
    refused = client.get("/api/v1/jobs", headers=auth(ci["token"]))
    assert refused.status_code == 401 and "revoked" in refused.get_json()["detail"]
    assert client.get("/api/v1/jobs", headers=auth(alice)).status_code == 200, "others still work"

    old = _create(client, alice, name="old", expires_in_days=1)
    with session_scope(settings.database_url) as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.id == old["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    refused = client.get("/api/v1/jobs", headers=auth(old["token"]))
    assert refused.status_code == 401 and "expired" in refused.get_json()["detail"]


def test_only_the_owner_or_an_admin_revokes_a_token(
    client: FlaskClient, settings: Settings, alice: str, bob: str
) -> None:
    alices = _create(client, alice, name="notebook")
    response = client.delete(f"/api/v1/tokens/{alices['id']}", headers=auth(bob))
    assert response.status_code == 404, "bob cannot see alice's tokens"
    assert client.get("/api/v1/tokens?all=true", headers=auth(bob)).status_code == 403
    admin = user_token(settings, "root", admin=True)
    everyone = client.get("/api/v1/tokens?all=true", headers=auth(admin)).get_json()["tokens"]
    assert {t["owner"] for t in everyone} == {"alice", "bob", "root"}
    assert client.delete(f"/api/v1/tokens/{alices['id']}", headers=auth(admin)).status_code == 200
    assert client.get("/api/v1/jobs", headers=auth(alices["token"])).status_code == 401


def test_bad_token_requests_name_the_field(client: FlaskClient, alice: str) -> None:
    for body, path in (
        ({}, "name"),
        ({"name": "x", "expires_in_days": "30"}, "expires_in_days"),
        ({"name": "x", "expires_in_days": 0}, "expires_in_days"),
        ({"name": "x", "expire_in_days": 3}, "expire_in_days"),
    ):
        response = client.post("/api/v1/tokens", json=body, headers=auth(alice))
        assert response.status_code == 422, body
        assert [e["path"] for e in response.get_json()["errors"]] == [path], body
    response = client.post(
        "/api/v1/tokens", json={"name": "x", "expire_in_days": 3}, headers=auth(alice)
    )
    assert "did you mean `expires_in_days`?" in response.get_json()["errors"][0]["message"]
    assert client.delete("/api/v1/tokens/nope", headers=auth(alice)).status_code == 404
