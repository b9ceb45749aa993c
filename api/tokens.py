"""/api/v1/tokens: a user's bearer tokens, named, with an optional expiry, revocable.

Several per user (one per laptop, notebook or CI job), so one can be revoked without the
others. The plain token appears once, in the answer to its creation; the database holds only
its SHA-256. Admins list and revoke anyone's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from flask import Blueprint, request
from pydantic import Field, StrictInt, ValidationError

from api.auth import current_user, require_user
from api.problems import ApiProblem
from api.serializers import token_json
from api.state import db_session, token_cache
from shared.models import utcnow
from shared.specs import SpecError, problems_from
from shared.specs.data import StrictModel
from shared.users import issue_token, list_tokens, revoke_token

bp = Blueprint("tokens", __name__, url_prefix="/api/v1/tokens")
bp.before_request(require_user)

# Ten years: past that, "expires" means nothing; leave it out for a token that never does.
MAX_EXPIRY_DAYS = 3650


class TokenRequest(StrictModel):
    """`{"name": "laptop", "expires_in_days": 30}`; no expiry when left out."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    expires_in_days: Annotated[StrictInt, Field(ge=1, le=MAX_EXPIRY_DAYS)] | None = None


@bp.get("")
def list_() -> dict[str, Any]:
    """Your tokens; `?all=true` for an admin: everyone's."""
    user = current_user()
    every_user = request.args.get("all", "").lower() in ("1", "true", "yes")
    if every_user and not user.is_admin:
        raise ApiProblem(403, "Forbidden", "only admins may list every user's tokens")
    rows = list_tokens(db_session(), None if every_user else user)
    return {"tokens": [token_json(token, owner) for token, owner in rows]}


@bp.post("")
def create() -> tuple[dict[str, Any], int]:
    try:
        wanted = TokenRequest.model_validate(request.get_json(silent=True) or {})
    except ValidationError as exc:
        raise SpecError(problems_from(exc, model=TokenRequest)) from None
    expires_at = (
        utcnow() + timedelta(days=wanted.expires_in_days) if wanted.expires_in_days else None
    )
    session = db_session()
    user = current_user()
    token, row = issue_token(session, user, wanted.name, expires_at)
    session.commit()
    return {**token_json(row, user.name), "token": token}, 201


@bp.delete("/<id:token_id>")
def revoke(token_id: str) -> tuple[dict[str, Any], int]:
    session = db_session()
    row = revoke_token(session, current_user(), token_id)
    session.commit()
    token_cache().forget(row.token_hash)  # refused by this process at once, others within its TTL
    return token_json(row, None), 200
