"""/api/v1/jobs: submit, read, list, cancel, delete, events, artifacts."""

from __future__ import annotations

import json
import re
from typing import Any, get_args

from flask import Blueprint, Request, Response, redirect, request, stream_with_context
from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError

from api import idempotency, live
from api.auth import current_user, require_user
from api.label_args import label_filters
from api.live_feed import FEED_KINDS
from api.media_types import artifact_media_type
from api.problems import ApiProblem
from api.serializers import artifact_json, event_json, job_json
from api.state import db_session, live_nodes, settings, statement_atomic, storage
from shared.jobs import event_pages
from shared.jobs import requests as jobs
from shared.jobs.deletion import delete_objects, mark_deleted
from shared.models import Job, is_our_id
from shared.pool.reservations import HOLDING_STATES, held_devices
from shared.pool.wakeup import wake_scheduler_soon
from shared.specs import JobKind, SweepSpec, validate_job_request
from shared.specs.labels import validate_labels
from shared.states import JobState
from shared.storage import keys
from shared.storage_quota import check_storage_quota
from shared.sweeps.children import children_of
from shared.sweeps.submission import submit_sweep
from shared.users import user_names

bp = Blueprint("jobs", __name__, url_prefix="/api/v1/jobs")
bp.before_request(require_user)

KINDS = get_args(JobKind)
# Priorities are small integers: a few levels are all a lab uses; the bound catches typos.
MAX_PRIORITY = 1000
# `?id_prefix=`: the start of a job id (shared.models.new_id: 32 lowercase hex characters).
ID_PREFIX = re.compile("[0-9a-f]{1,32}")
# An events cursor is an event id, a PostgreSQL BIGINT: a larger one would fail in the driver.
MAX_EVENT_ID = 2**63 - 1


SUBMIT_ROUTE = "POST /api/v1/jobs"


def _single_statement(submission: Request) -> bool:
    """A submission whose one write is its job and first event, one INSERT on PostgreSQL
    (shared/states.py): not a sweep (a parent and its children) and without an
    Idempotency-Key (whose record must commit with the job, or not at all)."""
    if idempotency.HEADER in submission.headers:
        return False
    body = submission.get_json(silent=True)
    return isinstance(body, dict) and body.get("kind") != "sweep"


@bp.post("")
@statement_atomic(_single_statement)
def submit() -> tuple[dict[str, Any], int, dict[str, str]] | Response:
    body = request.get_json(silent=True)
    if body is None:
        raise ApiProblem(
            400,
            "Malformed request",
            "the body must be a JSON object (Content-Type: application/json)",
        )
    job_request, spec = validate_job_request(body)
    session, user = db_session(), current_user()
    key = idempotency.requested_key()
    digest = idempotency.request_hash(body) if key is not None else ""
    if key is not None:
        first = idempotency.replay(session, user, key, SUBMIT_ROUTE, digest)
        if first is not None:
            return first
    check_storage_quota(session, user, settings().storage_quota_bytes, "new jobs")
    common: dict[str, Any] = {
        "max_attempts": settings().max_attempts,
        "data_roots": settings().data_roots,
        "store": storage(),
        "tags": job_request.tags,
        "note": job_request.note,
        "live_nodes": live_nodes(),
    }
    if isinstance(spec, SweepSpec):  # the sweep and its children (shared/sweeps/)
        job = submit_sweep(session, user, job_request.name, spec, **common)
    else:
        job = jobs.submit_job(session, user, job_request.kind, job_request.name, spec, **common)
    answer = _owned_json(job)
    if key is not None:
        idempotency.remember(session, user, key, SUBMIT_ROUTE, digest, 201, answer)
    try:
        session.commit()
    except IntegrityError:  # the same key, committed by a copy of this request meanwhile
        session.rollback()
        if key is None:
            raise
        first = idempotency.replay(session, user, key, SUBMIT_ROUTE, digest)
        if first is None:
            raise
        return first
    wake_scheduler_soon(settings(), "submitted")  # after the commit: the pass must see it
    return answer, 201, {"Location": f"/api/v1/jobs/{job.id}"}


@bp.get("")
def list_jobs() -> dict[str, Any]:
    args = request.args
    state, kind = args.get("state") or None, args.get("kind") or None
    problems = []
    if state is not None and state not in {s.value for s in JobState}:
        problems.append({"path": "state", "message": f"unknown state {state!r}"})
    if kind is not None and kind not in KINDS:
        problems.append({"path": "kind", "message": f"must be one of {', '.join(KINDS)}"})
    limit = _int_arg("limit", jobs.DEFAULT_PAGE_SIZE, 1, jobs.MAX_PAGE_SIZE, problems)
    id_prefix = args.get("id_prefix") or None
    if id_prefix is not None and not ID_PREFIX.fullmatch(id_prefix):
        problems.append(
            {"path": "id_prefix", "message": "must be 1 to 32 lowercase hex characters"}
        )
    tags, text = label_filters(problems)
    parent = args.get("parent") or None
    if parent is not None and not is_our_id(parent):
        problems.append({"path": "parent", "message": "must be a job id (32 hex characters)"})
    if problems:
        raise ApiProblem(400, "Invalid query parameter", problems[0]["message"], errors=problems)
    page = jobs.list_jobs(
        db_session(),
        current_user(),
        state=state,
        kind=kind,
        limit=limit,
        cursor=args.get("cursor") or None,
        every_user=args.get("all", "").lower() in ("1", "true", "yes"),
        id_prefix=id_prefix,
        tags=tags,
        text=text,
        parent=parent,
    )
    caller = current_user()
    names = user_names(db_session(), {job.owner_id for job in page.jobs} - {caller.id})
    names[caller.id] = caller.name
    listed = [job_json(job, names.get(job.owner_id, job.owner_id)) for job in page.jobs]
    return {"jobs": listed, "next_cursor": page.next_cursor}


def _owned_json(
    job: Job | Row[Any], placement: dict[str, list[int]] | None = None
) -> dict[str, Any]:
    """One job's JSON, its owner named (the caller, or for an admin maybe someone else); a
    sweep's shows its children's summary."""
    caller = current_user()
    if job.owner_id == caller.id:  # the common case needs no query for the name
        body = job_json(job, caller.name, placement)
    else:
        names = user_names(db_session(), [job.owner_id])
        body = job_json(job, names.get(job.owner_id, job.owner_id), placement)
    if job.kind == "sweep":
        body["children"] = children_of(db_session(), job.id)
    return body


def _int_arg(name: str, default: int, low: int, high: int, problems: list[dict[str, str]]) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        problems.append({"path": name, "message": f"must be an integer, got {raw!r}"})
        return default
    if not low <= value <= high:
        problems.append({"path": name, "message": f"must be between {low} and {high}"})
    return value


@bp.get("/<id:job_id>")
def get(job_id: str) -> dict[str, Any]:
    session = db_session()
    job = jobs.view_job(session, current_user(), job_id)
    # Only a job in a holding state has reservations: the others' polls skip the query and
    # show where their latest attempt ran (kept on the job when its devices were released).
    if job.state in HOLDING_STATES:
        return _owned_json(job, held_devices(session, job.id, job.attempt))
    ran_on = {part["node"]: part["devices"] for part in job.placement or []}
    return _owned_json(job, ran_on)


@bp.patch("/<id:job_id>")
def set_labels(job_id: str) -> dict[str, Any]:
    """`{"tags": [...], "note": "..."}`, either left out: the owner (or an admin) refiles a
    run; what is given replaces what the job had."""
    session = db_session()
    jobs.view_job(session, current_user(), job_id)  # another's job is 404 whatever the body
    labels = validate_labels(request.get_json(silent=True))
    job = jobs.set_labels(session, current_user(), job_id, labels.tags, labels.note)
    session.commit()
    return _owned_json(job)


@bp.post("/<id:job_id>/priority")
def set_priority(job_id: str) -> dict[str, Any]:
    """`{"priority": n}`: admins set any; owners may lower their own job's."""
    body = request.get_json(silent=True)
    priority = body.get("priority") if isinstance(body, dict) else None
    if not isinstance(priority, int) or isinstance(priority, bool) or abs(priority) > MAX_PRIORITY:
        message = f"must be an integer between -{MAX_PRIORITY} and {MAX_PRIORITY}"
        raise ApiProblem(
            422,
            "Invalid priority",
            f"priority: {message}",
            errors=[{"path": "priority", "message": message}],
        )
    session = db_session()
    job = jobs.set_priority(session, current_user(), job_id, priority)
    session.commit()
    return _owned_json(job)


@bp.post("/<id:job_id>/cancel")
def cancel(job_id: str) -> tuple[dict[str, Any], int]:
    session = db_session()
    job = jobs.cancel_job(session, current_user(), job_id)
    session.commit()
    wake_scheduler_soon(settings(), "cancelled")
    return _owned_json(job), 202


@bp.delete("/<id:job_id>")
def delete(job_id: str) -> tuple[str, int]:
    """A finished job and everything it stored (shared/jobs/deletion.py); 409 otherwise."""
    session, store = db_session(), storage()
    stored = mark_deleted(session, store, current_user(), job_id)
    session.commit()
    delete_objects(store, stored)  # after the commit: no visible job lacks its objects
    return "", 204


@bp.get("/<id:job_id>/events")
def events(job_id: str) -> dict[str, Any] | Response:
    """The state changes, oldest first, a page at a time (`?limit=`, `?cursor=` the previous
    page's `next_cursor`); `Accept: text/event-stream` follows the job live (api/live.py)."""
    if live.wants_stream():
        return live.feed_response(job_id, FEED_KINDS, log_from_start=False)
    problems: list[dict[str, str]] = []
    limit = _int_arg(
        "limit", event_pages.DEFAULT_EVENTS_PAGE_SIZE, 1, event_pages.MAX_EVENTS_PAGE_SIZE, problems
    )
    after = _int_arg("cursor", 0, 0, MAX_EVENT_ID, problems)
    if problems:
        raise ApiProblem(400, "Invalid query parameter", problems[0]["message"], errors=problems)
    page = event_pages.job_events(db_session(), current_user(), job_id, after=after, limit=limit)
    return {"events": [event_json(e) for e in page.events], "next_cursor": page.next_cursor}


@bp.get("/<id:job_id>/metrics")
def metrics(job_id: str) -> dict[str, Any]:
    """The job's metric series: `?kind=train|eval` (both by default), `?from_step=&to_step=`
    (inclusive), read from its metrics.jsonl as uploaded so far."""
    problems: list[dict[str, str]] = []
    low = _int_arg("from_step", 0, 0, 10**9, problems)
    high = _int_arg("to_step", 10**9, 0, 10**9, problems)
    kind = request.args.get("kind")
    if kind not in (None, "train", "eval"):
        problems.append({"path": "kind", "message": "must be train or eval"})
    if problems:
        raise ApiProblem(400, "Invalid query parameter", problems[0]["message"], errors=problems)
    row = jobs.find_artifact(db_session(), current_user(), job_id, keys.METRICS_NAME)
    lines = storage().get(row.key).decode().splitlines() if row is not None else []
    series = []
    for line in lines:
        entry = json.loads(line)
        entry_kind = "eval" if "eval" in entry else "train"
        if (kind is None or kind == entry_kind) and low <= entry.get("step", 0) <= high:
            series.append({"kind": entry_kind, **entry})
    return {"metrics": series}


@bp.get("/<id:job_id>/artifacts")
def artifacts(job_id: str) -> dict[str, Any]:
    rows = jobs.job_artifacts(db_session(), current_user(), job_id)
    return {"artifacts": [artifact_json(a) for a in rows]}


@bp.get("/<id:job_id>/artifacts/<path:name>")
def artifact(job_id: str, name: str) -> Response:
    """The artifact's bytes, streamed; or, from S3, a redirect to a presigned URL
    (pass ?redirect=false to have the API stream S3 objects too). A name that no artifact
    can have is not found before any query."""
    row = None
    if keys.is_artifact_name(name):
        row = jobs.find_artifact(db_session(), current_user(), job_id, name)
    if row is None:
        raise ApiProblem(404, "Artifact not found", f"job {job_id} has no artifact {name!r}")
    store = storage()
    if request.args.get("redirect", "true").lower() not in ("false", "0", "no"):
        url = store.url(row.key)
        if url is not None:
            return redirect(url, code=302)  # type: ignore[return-value]
    filename = name.rsplit("/", 1)[-1]
    return Response(
        stream_with_context(store.open(row.key)),
        mimetype=artifact_media_type(name),
        headers={
            "Content-Length": str(row.size),
            "Content-Disposition": f'attachment; filename="{filename}"',
            "ETag": f'"{row.sha256}"',
        },
    )
