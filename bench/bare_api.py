"""The bare tool bench/api.py measures ganforge's API against: the smallest Flask +
SQLAlchemy app that does the same work per request, run under gunicorn with the same settings.

Each request checks its bearer token as ganforge does (SHA-256 of the token looked up in
`api_tokens`, joined to its user, refused if revoked or expired) and then reads or writes the
same tables: one job row (poll), the newest 50 of the user's jobs (list), or a job row and its
creation event (submit). No validation, no rate limit, no last-use writes, no metrics: what is
left is the floor a Flask + SQLAlchemy + PostgreSQL stack sets.

    gunicorn --worker-class gthread ... 'bench.bare_api:create_app()'   (BENCH_BARE_DATABASE_URL)
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from datetime import datetime, timezone
from typing import Any

from flask import Flask, abort, request
from sqlalchemy import create_engine, text

# The list page: ganforge's default page size (shared.jobs.requests.DEFAULT_PAGE_SIZE).
PAGE_SIZE = 50

_USER = text(
    "SELECT u.id FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = :hash"
    " AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())"
)
_JOB = text("SELECT * FROM jobs WHERE id = :id AND owner_id = :owner")
_JOBS = text(
    "SELECT * FROM jobs WHERE owner_id = :owner ORDER BY created_at DESC, id DESC LIMIT :limit"
)
_INSERT_JOB = text(
    "INSERT INTO jobs (id, owner_id, kind, name, spec, state, attempt, max_attempts, devices,"
    " priority, created_at, updated_at) VALUES (:id, :owner, :kind, :name, :spec, 'queued', 1,"
    " 3, 1, 0, :now, :now) RETURNING *"
)
_INSERT_EVENT = text(
    "INSERT INTO job_events (job_id, from_state, to_state, attempt, reason, created_at)"
    " VALUES (:id, NULL, 'queued', 1, 'submitted', :now)"
)


def create_app(database_url: str | None = None) -> Flask:
    engine = create_engine(database_url or os.environ["BENCH_BARE_DATABASE_URL"])
    app = Flask("bare")

    @app.get("/bare/jobs/<job_id>")
    def poll(job_id: str) -> dict[str, Any]:
        with engine.connect() as connection:
            owner = _owner(connection)
            row = connection.execute(_JOB, {"id": job_id, "owner": owner}).first()
        if row is None:
            abort(404)
        return _json(row._mapping)

    @app.get("/bare/jobs")
    def listing() -> dict[str, Any]:
        with engine.connect() as connection:
            owner = _owner(connection)
            rows = connection.execute(_JOBS, {"owner": owner, "limit": PAGE_SIZE}).all()
        return {"jobs": [_json(row._mapping) for row in rows]}

    @app.post("/bare/jobs")
    def submit() -> tuple[dict[str, Any], int]:
        body = request.get_json()
        now = datetime.now(timezone.utc)
        with engine.begin() as connection:
            owner = _owner(connection)
            values = {"id": uuid.uuid4().hex, "owner": owner, "now": now}
            values |= {"kind": body["kind"], "name": body["name"], "spec": json.dumps(body["spec"])}
            row = connection.execute(_INSERT_JOB, values).one()
            connection.execute(_INSERT_EVENT, values)
        return _json(row._mapping), 201

    return app


def _owner(connection: Any) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        abort(401)
    digest = hashlib.sha256(token.strip().encode()).hexdigest()
    owner = connection.execute(_USER, {"hash": digest}).scalar()
    if owner is None:
        abort(401)
    return str(owner)


def _json(row: Any) -> dict[str, Any]:
    return {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in row.items()
    }
