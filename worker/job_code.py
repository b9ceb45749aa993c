"""Which researchers' code bundles an attempt runs: a script job's, a custom model's bundle
for a training job, or for a job that reads a checkpoint (sampling, evaluation) the bundle of
the job that wrote it.
The supervisor fetches them to the node's cache before the job's processes start, grants those
processes read access to them (and to nothing else of the service's home), and tells the ranks
where they are in the ticket."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from shared.config import Settings
from shared.db import session_scope
from shared.models import Job

CHECKPOINT_READERS = ("sample", "evaluate")


@dataclass(frozen=True)
class AttemptNeeds:
    """What the supervisor sets up for an attempt from its job's spec."""

    bundles: list[str]
    # RLIMIT_AS of each of its processes (spec.resources.address_space_gib), or None.
    address_space_bytes: int | None


def attempt_needs(settings: Settings, job_id: str) -> AttemptNeeds:
    with session_scope(settings.database_url) as session:
        kind, spec = session.execute(select(Job.kind, Job.spec).where(Job.id == job_id)).one()
        source = spec
        if kind in CHECKPOINT_READERS and isinstance(spec, dict):
            source = session.scalar(select(Job.spec).where(Job.id == str(spec.get("job_id"))))
    resources = spec.get("resources") if isinstance(spec, dict) else None
    gib = resources.get("address_space_gib") if isinstance(resources, dict) else None
    return AttemptNeeds(_model_code(source), int(gib) << 30 if gib else None)


def code_bundles_of(settings: Settings, job_id: str) -> list[str]:
    return attempt_needs(settings, job_id).bundles


def _model_code(spec: Any) -> list[str]:
    if isinstance(spec, dict) and isinstance(spec.get("entrypoint"), str) and spec.get("code"):
        return [str(spec["code"])]  # a script job's
    model = spec.get("model") if isinstance(spec, dict) else None
    if isinstance(model, dict) and model.get("family") == "custom" and model.get("code"):
        return [str(model["code"])]
    return []
