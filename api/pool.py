"""/api/v1/pool (everyone: nodes, devices and their holders, the queue with reasons) and
/api/v1/admin (admins: drain, undrain and remove nodes; users' quotas, storage included)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from api.auth import current_user, require_user
from api.problems import ApiProblem
from api.state import db_session, settings
from shared.models import User
from shared.pool.nodes import remove_node, set_draining
from shared.pool.overview import pool_overview
from shared.storage_quota import effective_quota, set_storage_quota
from shared.users import UnknownUserError, set_quota

pool_bp = Blueprint("pool", __name__, url_prefix="/api/v1/pool")
pool_bp.before_request(require_user)
admin_bp = Blueprint("admin", __name__, url_prefix="/api/v1/admin")
admin_bp.before_request(require_user)

# The largest quota a person would set: more devices than any lab pool has, far fewer than a
# typo's 1e9.
MAX_QUOTA = 100_000
# The largest storage quota accepted, in bytes (1 PiB): above any lab's store, so a larger
# number is a typo.
MAX_STORAGE_QUOTA = 2**50


@admin_bp.before_request
def _require_admin() -> None:
    if not current_user().is_admin:
        raise ApiProblem(403, "Forbidden", "this route is for admins")


@pool_bp.get("")
def overview() -> dict[str, Any]:
    return pool_overview(db_session())


@admin_bp.post("/nodes/<name:name>/drain")
def drain(name: str) -> dict[str, Any]:
    return _node_state(name, draining=True)


@admin_bp.post("/nodes/<name:name>/undrain")
def undrain(name: str) -> dict[str, Any]:
    return _node_state(name, draining=False)


def _node_state(name: str, *, draining: bool) -> dict[str, Any]:
    session = db_session()
    node = set_draining(session, name, draining)
    session.commit()
    return {"name": node.name, "state": node.state}


@admin_bp.delete("/nodes/<name:name>")
def delete_node(name: str) -> tuple[str, int]:
    session = db_session()
    remove_node(session, name)
    session.commit()
    return "", 204


@admin_bp.put("/users/<name:name>/quota")
def quota(name: str) -> dict[str, Any]:
    """`{"max_devices": n | null, "max_queued_jobs": n | null}`; null lifts the limit."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiProblem(400, "Malformed request", "the body must be a JSON object")
    problems = [
        {"path": field, "message": f"must be null or an integer from 0 to {MAX_QUOTA}"}
        for field in ("max_devices", "max_queued_jobs")
        if not _is_quota(body.get(field))
    ]
    problems += [{"path": f, "message": "unknown field"} for f in body if f not in _QUOTA_FIELDS]
    if problems:
        raise ApiProblem(422, "Invalid quota", problems[0]["message"], errors=problems)
    session = db_session()
    try:
        user: User = set_quota(session, name, body.get("max_devices"), body.get("max_queued_jobs"))
    except UnknownUserError as exc:
        raise ApiProblem(404, "User not found", str(exc)) from None
    session.commit()
    return {
        "user": user.name,
        "max_devices": user.max_devices,
        "max_queued_jobs": user.max_queued_jobs,
    }


_QUOTA_FIELDS = ("max_devices", "max_queued_jobs")


@admin_bp.put("/users/<name:name>/storage-quota")
def storage_quota(name: str) -> dict[str, Any]:
    """`{"storage_quota_bytes": n | null}`: null follows GANFORGE_STORAGE_QUOTA_BYTES, 0 is no
    limit. A route of its own, so that setting it leaves the device quotas as they are."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiProblem(400, "Malformed request", "the body must be a JSON object")
    field, value = "storage_quota_bytes", body.get("storage_quota_bytes")
    problems = [{"path": f, "message": "unknown field"} for f in body if f != field]
    if field not in body:
        problems.insert(0, {"path": field, "message": "required: bytes, or null for the default"})
    elif not _is_quota(value, MAX_STORAGE_QUOTA):
        message = f"must be null or an integer number of bytes from 0 to {MAX_STORAGE_QUOTA}"
        problems.insert(0, {"path": field, "message": message})
    if problems:
        raise ApiProblem(422, "Invalid quota", problems[0]["message"], errors=problems)
    session = db_session()
    try:
        user = set_storage_quota(session, name, value)
    except UnknownUserError as exc:
        raise ApiProblem(404, "User not found", str(exc)) from None
    session.commit()
    return {
        "user": user.name,
        "storage_quota_bytes": user.storage_quota_bytes,
        "effective_quota_bytes": effective_quota(user, settings().storage_quota_bytes),
    }


def _is_quota(value: object, most: int = MAX_QUOTA) -> bool:
    if value is None:
        return True
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= most
