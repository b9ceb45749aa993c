"""/api/v1/usage: the bytes each user stores (shared/storage_usage.py), against their quota.

One answer shape for both views: the caller's own (`users` holds them alone) and, for admins
with `?all=true`, every user's; `largest_jobs` are where deleting frees the most.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from sqlalchemy import select

from api.auth import current_user, require_user
from api.problems import ApiProblem
from api.state import db_session, settings
from shared.models import User
from shared.storage_quota import effective_quota
from shared.storage_usage import JobUsage, UserUsage, largest_jobs, usage_by_user, usage_of

bp = Blueprint("usage", __name__, url_prefix="/api/v1/usage")
bp.before_request(require_user)

TRUE = ("1", "true", "yes")
FALSE = ("", "0", "false", "no")


@bp.get("")
def usage() -> dict[str, Any]:
    raw = request.args.get("all", "").lower()
    if raw not in TRUE + FALSE:
        problems = [{"path": "all", "message": "must be true or false"}]
        raise ApiProblem(
            400, "Invalid query parameter", "all: must be true or false", errors=problems
        )
    session, caller = db_session(), current_user()
    if raw in FALSE:
        # The user row itself, not the token cache's copy of it (api/token_cache.py): a quota
        # an admin has just set shows at once.
        me = session.scalars(
            select(User).where(User.id == caller.id).execution_options(populate_existing=True)
        ).one()
        biggest = largest_jobs(session, caller.id)
        return {
            "users": [_user_json(usage_of(session, caller.id), me)],
            "largest_jobs": [_job_json(job, caller.name) for job in biggest],
        }
    if not caller.is_admin:
        raise ApiProblem(403, "Forbidden", "only an admin can read every user's usage")
    every = select(User).execution_options(populate_existing=True)
    users = {user.id: user for user in session.scalars(every)}
    return {
        "users": [_user_json(found, users[found.user_id]) for found in usage_by_user(session)],
        "largest_jobs": [
            _job_json(job, users[job.owner_id].name) for job in largest_jobs(session, None)
        ],
    }


def _user_json(found: UserUsage, user: User) -> dict[str, Any]:
    quota = effective_quota(user, settings().storage_quota_bytes)
    return {
        "user": user.name,
        "total_bytes": found.total,
        "artifacts_bytes": found.artifacts,
        "datasets_bytes": found.datasets,
        "code_bytes": found.code,
        "quota_bytes": quota,
        "over_quota": quota is not None and found.total >= quota,
    }


def _job_json(job: JobUsage, owner: str) -> dict[str, Any]:
    return {
        "id": job.job_id,
        "name": job.name,
        "owner": owner,
        "state": job.state,
        "artifacts": job.artifacts,
        "bytes": job.bytes,
    }
