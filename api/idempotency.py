"""`Idempotency-Key` on the routes that create things (POST /jobs, POST /datasets).

A client that lost the answer to a submission (a timeout, a dropped connection) resends it
with the same key and gets the first answer back, with `Idempotent-Replayed: true`, instead
of a second job. The key's row is written in the transaction that creates the job or
dataset, so either both exist or neither; two copies racing each other meet at the unique
(user, key) constraint and the loser replays the winner's answer.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import Response, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.problems import ApiProblem
from shared.models import IdempotencyKey, User

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 200


def requested_key() -> str | None:
    """The request's key, checked: 1-200 printable ASCII characters."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 0 < len(key) <= MAX_KEY_LENGTH or not all(" " < c <= "~" for c in key):
        raise ApiProblem(
            400,
            "Invalid Idempotency-Key",
            f"{HEADER} must be 1-{MAX_KEY_LENGTH} printable ASCII characters without spaces "
            "(a UUID is a good choice)",
            errors=[{"path": HEADER, "message": "1-200 printable ASCII characters"}],
        )
    return key


def request_hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def replay(session: Session, user: User, key: str, route: str, digest: str) -> Response | None:
    """The first answer to this key, or None when the key is new. A key used before for a
    different request (another route or body) is a 422: reusing it is a client bug."""
    row = session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.user_id == user.id, IdempotencyKey.key == key)
    )
    if row is None:
        return None
    if (row.route, row.request_hash) != (route, digest):
        raise ApiProblem(
            422,
            "Idempotency-Key reused",
            f"this {HEADER} was first sent with a different request; use a new key for a "
            "new request",
            errors=[{"path": HEADER, "message": "already used for a different request"}],
        )
    answer = Response(json.dumps(row.response), status=row.status, mimetype="application/json")
    answer.headers["Idempotent-Replayed"] = "true"
    location = row.response.get("links", {}).get("self") if row.status == 201 else None
    if location:
        answer.headers["Location"] = location
    return answer


def remember(
    session: Session,
    user: User,
    key: str,
    route: str,
    digest: str,
    status: int,
    body: dict[str, Any],
) -> None:
    """Record the answer with the rows the request created (same transaction)."""
    session.add(
        IdempotencyKey(
            user_id=user.id,
            key=key,
            route=route,
            request_hash=digest,
            status=status,
            response=body,
        )
    )
