"""/api/v1/compare: runs side by side. `?ids=a,b,c` (whole ids, the caller's or, for an admin,
anyone's) and/or `?tag=T` (repeatable; the caller's own jobs with every tag): the table of
what differs (shared/jobs/comparison.py), and `/curves?metric=` one metric over steps."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, request

from api.auth import current_user, require_user
from api.label_args import tag_args
from api.problems import ApiProblem
from api.serializers import job_json
from api.state import db_session, storage
from shared.jobs import comparison
from shared.models import Job, is_our_id
from shared.users import user_names

bp = Blueprint("compare", __name__, url_prefix="/api/v1/compare")
bp.before_request(require_user)

# A metric as metrics.jsonl names it (`Loss/G/loss`, `high_quality`) or an alias (`loss_g`).
METRIC = re.compile(r"[A-Za-z0-9_./:-]{1,100}")


@bp.get("")
def compare() -> dict[str, Any]:
    """The jobs, the spec fields that differ between them (`columns`, then each job's
    `rows`), those they share (`same`), and each job's final figures."""
    chosen = _chosen_jobs([])
    table = comparison.comparison_table(chosen)
    caller = current_user()
    names = user_names(db_session(), {job.owner_id for job in chosen} - {caller.id})
    names[caller.id] = caller.name
    listed = [job_json(job, names.get(job.owner_id, job.owner_id)) for job in chosen]
    return {"jobs": listed, **table}


@bp.get("/curves")
def curves() -> dict[str, Any]:
    """One metric's [step, value] series from each job's metrics.jsonl (empty where it has
    none yet): a training report's key or an evaluation's figure."""
    problems: list[dict[str, str]] = []
    given = request.args.get("metric", "")
    if not METRIC.fullmatch(given):
        problems.append(
            {
                "path": "metric",
                "message": "give a metric: a name in metrics.jsonl (`Loss/G/loss`, "
                "`high_quality`) or `loss_g`, `loss_d`, `loss_d_reg`",
            }
        )
    chosen = _chosen_jobs(problems)
    metric = comparison.metric_name(given)
    where = comparison.metrics_keys(db_session(), [job.id for job in chosen])
    store = storage()
    return {
        "metric": metric,
        "curves": [
            {
                "id": job.id,
                "name": job.name,
                "points": (
                    comparison.metric_series(store.get(where[job.id]), metric)
                    if job.id in where
                    else []
                ),
            }
            for job in chosen
        ],
    }


def _chosen_jobs(problems: list[dict[str, str]]) -> list[Job]:
    """The jobs `?ids=` and `?tag=` pick; a 400 naming the parameter for a bad one (with the
    `problems` found before), a 404 naming the ids the caller has no job of."""
    ids = _ids(problems)
    tags = tag_args(problems)
    if not ids and not tags and not any(p["path"] in ("ids", "tag") for p in problems):
        problems.append({"path": "ids", "message": "give ids=ID,ID,... or tag=TAG (or both)"})
    if problems:
        raise ApiProblem(400, "Invalid query parameter", problems[0]["message"], errors=problems)
    try:
        chosen = comparison.compared_jobs(db_session(), current_user(), ids, tags)
    except comparison.JobsNotFoundError as missing:
        raise ApiProblem(404, "Job not found", str(missing), jobs=missing.job_ids) from None
    if len(chosen) > comparison.MAX_COMPARED:
        message = f"more than {comparison.MAX_COMPARED} jobs; narrow with another tag"
        raise ApiProblem(
            400, "Too many jobs", message, errors=[{"path": "tag", "message": message}]
        )
    return chosen


def _ids(problems: list[dict[str, str]]) -> list[str]:
    """`?ids=a,b,c` (or repeated), whole job ids, each once, in the order given."""
    given = [part.strip() for value in request.args.getlist("ids") for part in value.split(",")]
    ids = list(dict.fromkeys(part for part in given if part))
    bad = [part for part in ids if not is_our_id(part)]
    if bad:
        problems.append(
            {"path": "ids", "message": f"{bad[0][:40]!r} is not a job id (32 hex characters)"}
        )
    elif len(ids) > comparison.MAX_COMPARED:
        problems.append(
            {"path": "ids", "message": f"at most {comparison.MAX_COMPARED} jobs at a time"}
        )
    return ids
