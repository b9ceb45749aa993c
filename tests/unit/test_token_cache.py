"""An API process remembers an accepted token for TOKEN_CACHE_S, for reads: a revocation made
elsewhere (another process, the database) is refused within that bound, one made through this
process at once, a write at once; bad tokens are never remembered."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from api.token_cache import TOKEN_CACHE_S, TokenCache
from shared.config import Settings
from shared.db import session_scope
from shared.models import ApiToken, utcnow
from shared.users import hash_token
from tests.helpers import auth, train_request


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _revoke_in_database(settings: Settings, token: str) -> None:
    """As another API process (or an operator) would: the row changes, not this memory."""
    with session_scope(settings.database_url) as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.token_hash == hash_token(token))
            .values(revoked_at=utcnow())
        )


def test_a_token_revoked_elsewhere_is_refused_once_its_memory_lapses(
    app: Flask, client: FlaskClient, settings: Settings, alice: str
) -> None:
    clock = FakeClock()
    app.extensions["ganforge.token_cache"] = TokenCache(TOKEN_CACHE_S, clock)
    assert client.get("/api/v1/jobs", headers=auth(alice)).status_code == 200
    _revoke_in_database(settings, alice)
    clock.now += TOKEN_CACHE_S / 2
    assert client.get("/api/v1/jobs", headers=auth(alice)).status_code == 200, "remembered"
    clock.now += TOKEN_CACHE_S / 2
    refused = client.get("/api/v1/jobs", headers=auth(alice))
    assert refused.status_code == 401 and "revoked" in refused.get_json()["detail"]


def test_a_token_revoked_through_this_process_is_refused_at_once(
    client: FlaskClient, alice: str
) -> None:
    made = client.post("/api/v1/tokens", json={"name": "ci"}, headers=auth(alice)).get_json()
    assert client.get("/api/v1/jobs", headers=auth(made["token"])).status_code == 200
    assert client.delete(f"/api/v1/tokens/{made['id']}", headers=auth(alice)).status_code == 200
    refused = client.get("/api/v1/jobs", headers=auth(made["token"]))
    assert refused.status_code == 401 and "revoked" in refused.get_json()["detail"]


def test_reads_use_the_memory_and_writes_look_the_token_up(
    app: Flask, client: FlaskClient, settings: Settings, alice: str, bob: str
) -> None:
    cache: TokenCache = app.extensions["ganforge.token_cache"]
    created = client.post("/api/v1/jobs", json=train_request(), headers=auth(alice))
    assert created.status_code == 201, created.get_json()
    job_url = f"/api/v1/jobs/{created.get_json()['id']}"
    for _ in range(2):  # the first looks the token up, the second is remembered
        shown = client.get(job_url, headers=auth(alice))
        assert shown.status_code == 200 and shown.get_json()["owner"] == "alice"
        assert client.get(job_url, headers=auth(bob)).status_code == 404, "not bob's"
    assert hash_token(alice) in cache._entries
    _revoke_in_database(settings, alice)
    refused = client.post(f"{job_url}/cancel", headers=auth(alice))
    assert refused.status_code == 401, "a write never goes on a remembered token"
    assert client.get("/api/v1/jobs", headers=auth("gf_wrong")).status_code == 401
    assert hash_token("gf_wrong") not in cache._entries, "refused tokens are not remembered"
