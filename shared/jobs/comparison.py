"""Runs side by side (GET /api/v1/compare): which jobs, what differs between their specs, the
final figures of each, and one metric's curve from each run's metrics.jsonl.

A question is answered by several runs that differ in a few fields of long specs; the table
shows those fields and leaves the rest, listed once as `same`, out of the way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.jobs.tags import with_tags
from shared.models import Artifact, Job, User
from shared.storage import keys

# The most jobs one comparison holds: a table past this is not read side by side.
MAX_COMPARED = 100
# Short names for the training losses as metrics.jsonl records them (worker/gan/step.py).
METRIC_ALIASES = {
    "loss_d": "Loss/D/loss",
    "loss_g": "Loss/G/loss",
    "loss_d_reg": "Loss/D/reg",
}


class JobsNotFoundError(LookupError):
    """Some of the ids asked for are no jobs the caller may see."""

    def __init__(self, job_ids: list[str]):
        super().__init__(f"no job {', '.join(job_ids)} among your jobs")
        self.job_ids = job_ids


def compared_jobs(
    session: Session, viewer: User, ids: Sequence[str], tags: Sequence[str]
) -> list[Job]:
    """The jobs named by `ids` (the viewer's own, or any for an admin), in that order, then
    the viewer's own jobs with every one of `tags`, newest first; each once, at most
    MAX_COMPARED + 1 (one more than fits: the caller tells the viewer to narrow)."""
    chosen: dict[str, Job] = {}
    if ids:
        query = select(Job).where(Job.id.in_(ids), Job.deleted_at.is_(None))
        if not viewer.is_admin:
            query = query.where(Job.owner_id == viewer.id)
        found = {job.id: job for job in session.scalars(query)}
        missing = [job_id for job_id in ids if job_id not in found]
        if missing:
            raise JobsNotFoundError(missing)
        chosen = {job_id: found[job_id] for job_id in ids}
    if tags:
        query = with_tags(
            select(Job).where(Job.owner_id == viewer.id, Job.deleted_at.is_(None)), tags
        )
        query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(MAX_COMPARED + 1)
        for job in session.scalars(query):
            chosen.setdefault(job.id, job)
    return list(chosen.values())[: MAX_COMPARED + 1]


def comparison_table(jobs: Sequence[Job]) -> dict[str, Any]:
    """`columns` (the differing spec paths, then the figures any job has), one of `rows` per
    job (id, name, state, tags, its value of each differing path, its final figures) and
    `same` (the spec paths all share, with the value)."""
    flats = [flat_spec(job.spec) for job in jobs]
    differing, same = spec_differences(flats)
    figures = [final_figures(job.evaluation) for job in jobs]
    columns = [{"name": path, "group": "spec"} for path in differing]
    columns += [{"name": name, "group": "figures"} for name in figure_names(figures)]
    rows = [
        {
            "id": job.id,
            "name": job.name,
            "state": job.state,
            "tags": job.tags or [],
            "spec": {path: flat.get(path) for path in differing},
            "figures": shown,
        }
        for job, flat, shown in zip(jobs, flats, figures, strict=True)
    ]
    return {"columns": columns, "rows": rows, "same": same}


def flat_spec(spec: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A spec's fields by dotted path (`train.seed`); a list is one value."""
    flat: dict[str, Any] = {}
    for key, value in spec.items():
        if isinstance(value, dict) and value:
            flat.update(flat_spec(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def spec_differences(flats: Sequence[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    """(the paths whose values differ between flat specs, in the specs' own order; the paths
    every spec gives the same value, with it). A path one spec lacks differs (its value is
    null there). Values are compared as JSON, so `1` and `true` differ."""
    paths = list(dict.fromkeys(path for flat in flats for path in flat))
    differing, same = [], {}
    for path in paths:
        shown = {json.dumps(flat.get(path, _ABSENT), sort_keys=True) for flat in flats}
        if len(shown) == 1 and all(path in flat for flat in flats):
            same[path] = flats[0][path]
        else:
            differing.append(path)
    return differing, same


_ABSENT = {"absent": True}


def final_figures(evaluation: dict[str, Any] | None) -> dict[str, Any]:
    """The numbers of a job's latest evaluation (worker/gan/evaluation.py): each figure,
    `<figure>_interval` where stored, its `step` and sample counts; null where a figure is
    undefined. Lists of counts and notes in words are left out."""
    return {
        key: value
        for key, value in (evaluation or {}).items()
        if value is None or _is_number(value) or (key.endswith("_interval") and _is_interval(value))
    }


def figure_names(figures: Sequence[dict[str, Any]]) -> list[str]:
    """The figures any row has, `step` first, then in the order the evaluations give them."""
    names = dict.fromkeys(
        key for row in figures for key in row if not key.endswith("_interval") and key != "step"
    )
    present = any("step" in row for row in figures)
    return (["step"] if present else []) + list(names)


def metric_name(given: str) -> str:
    """The name metrics.jsonl records `given` under (a short alias, or itself)."""
    return METRIC_ALIASES.get(given, given)


def metric_series(metrics_jsonl: bytes, metric: str) -> list[list[float]]:
    """[step, value] of `metric` in each line of a metrics.jsonl that has it as a number: a
    training report's own key (`Loss/G/loss`) or an evaluation's figure (`high_quality`)."""
    points: list[list[float]] = []
    for line in metrics_jsonl.decode().splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        source = entry["eval"] if isinstance(entry.get("eval"), dict) else entry
        value = source.get(metric)
        if _is_number(value) and math.isfinite(value) and "step" in entry:
            points.append([entry["step"], value])
    return points


def metrics_keys(session: Session, job_ids: Sequence[str]) -> dict[str, str]:
    """Job id -> the storage key of its metrics.jsonl, for the jobs that have one."""
    rows = session.execute(
        select(Artifact.job_id, Artifact.key).where(
            Artifact.job_id.in_(job_ids), Artifact.name == keys.METRICS_NAME
        )
    )
    return {job_id: key for job_id, key in rows}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_interval(value: object) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)
