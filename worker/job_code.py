"""Which researchers' code bundles an attempt runs: a script job's, a custom model's bundle
for a training job, or for a job that reads a checkpoint (sampling, evaluation) the bundle of
the job that wrote it.
The supervisor fetches them to the node's cache before the job's processes start, grants those
processes read access to them (and to nothing else of the service's home), and tells the ranks
where they are in the ticket."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from shared.config import Settings
from shared.db import session_scope
from shared.models import Job

CHECKPOINT_READERS = ("sample", "evaluate")


def code_bundles_of(settings: Settings, job_id: str) -> list[str]:
    with session_scope(settings.database_url) as session:
        kind, spec = session.execute(select(Job.kind, Job.spec).where(Job.id == job_id)).one()
        if kind in CHECKPOINT_READERS and isinstance(spec, dict):
            spec = session.scalar(select(Job.spec).where(Job.id == str(spec.get("job_id"))))
    return _model_code(spec)


def _model_code(spec: Any) -> list[str]:
    if isinstance(spec, dict) and isinstance(spec.get("entrypoint"), str) and spec.get("code"):
        return [str(spec["code"])]  # a script job's
    model = spec.get("model") if isinstance(spec, dict) else None
    if isinstance(model, dict) and model.get("family") == "custom" and model.get("code"):
        return [str(model["code"])]
    return []
