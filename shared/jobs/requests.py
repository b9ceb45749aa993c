"""What the API does with jobs on a user's behalf: submit, read, list, cancel, prioritise.

Routes and the CLI call these functions; they hold the business rules (ownership, what cancel
means in each state). State changes go through `shared.states.transition`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Row, bindparam, select, tuple_
from sqlalchemy.orm import Session

from shared.artifact_names import GENERATOR_SPEC_NAME
from shared.codebundles.references import check_code_reference
from shared.datafiles.roots import DataPathRefusedError, check_data_path
from shared.datasets import check_spec_fits_dataset
from shared.jobs.inversion_inputs import check_inversion_inputs
from shared.jobs.reports import SAMPLED_KINDS, latest_checkpoint, list_artifacts
from shared.jobs.sample_classes import check_sample_classes
from shared.jobs.sample_inputs import check_latent_space, check_sample_inputs, check_sample_size
from shared.jobs.tags import matching_text, with_tags
from shared.models import Artifact, Job, User, is_our_id, utcnow
from shared.pool.admission import LiveNodes, check_admission
from shared.pool.overview import check_queued_quota
from shared.pool.plan_values import QueuedJob
from shared.specs import (
    CheckpointReader,
    JobSpec,
    LatentSpec,
    SampleSpec,
    ScriptSpec,
    SpecError,
)
from shared.states import TERMINAL, JobState, insert_created, transition
from shared.storage import Storage
from shared.users import PermissionDeniedError as PermissionDeniedError

# Page size of GET /jobs when the caller gives none, and the most one page may hold.
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# The cursors we hand out are about 100 characters; a longer one is not ours and is refused
# before it is decoded (a JSON text nested thousands deep would make the decoder recurse).
MAX_CURSOR_LENGTH = 256


class JobNotFoundError(LookupError):
    """No job with that id belongs to the caller (other users' jobs are not found either)."""

    def __init__(self, job_id: str):
        super().__init__(f"no job {job_id!r}")
        self.job_id = job_id


class JobConflictError(RuntimeError):
    """The job is in a state where the request makes no sense (e.g. cancel a finished job)."""


class InvalidCursorError(ValueError):
    """The pagination cursor was not one we issued."""


def submit_job(
    session: Session,
    owner: User,
    kind: str,
    name: str,
    spec: JobSpec,
    *,
    max_attempts: int,
    data_roots: Sequence[Path] = (),
    store: Storage | None = None,
    tags: Sequence[str] = (),
    note: str = "",
    live_nodes: LiveNodes | None = None,
) -> Job:
    """Create a queued job. The scheduler places it on a node after this commits.
    `data_roots`: the folders a spec's data.path may name (GANFORGE_DATA_ROOTS); `store`:
    where a sampling spec's `.npy` latents are read (their header) to check them now;
    `tags` and `note`: its labels, checked already (shared/specs/labels.py); `live_nodes`:
    the API's memory of the pool, which admission may rest on (shared/pool/admission.py)."""
    if isinstance(spec, CheckpointReader):
        _check_checkpoint_source(session, owner, spec, store)
    elif isinstance(spec, ScriptSpec):  # their bundle, holding the entrypoint's module
        check_code_reference(session, owner, spec.code, {"entrypoint": spec.entrypoint}, "spec")
    else:
        if spec.data.path is not None:
            try:
                check_data_path(spec.data.path, data_roots)
            except DataPathRefusedError as refused:
                raise SpecError([{"path": "spec.data.path", "message": str(refused)}]) from None
        check_spec_fits_dataset(session, owner, spec)
        if spec.model.family == "custom":  # the bundle is one they may use, with its modules
            assert spec.model.code and spec.model.generator and spec.model.discriminator
            networks = {
                "generator": spec.model.generator,
                "discriminator": spec.model.discriminator,
            }
            check_code_reference(session, owner, spec.model.code, networks, "spec.model")
    check_queued_quota(session, owner)
    now = utcnow()
    resources = spec.resources
    unfit = check_admission(
        session,
        QueuedJob(
            id="",
            owner=owner.id,
            devices=resources.devices,
            created_at=now,
            kind=kind,
            device_type=resources.device_type,
            labels=resources.labels,
            nodes=resources.nodes,
        ),
        live_nodes,
    )
    if unfit is not None:
        raise SpecError([{"path": "spec.resources", "message": f"can never run here: {unfit}"}])
    values = {
        "owner_id": owner.id,
        "kind": kind,
        "name": name,
        "spec": spec.model_dump(mode="json"),
        "state": JobState.QUEUED.value,
        "attempt": 1,
        "max_attempts": max_attempts,
        "devices": spec.resources.devices,
        "tags": list(tags),
        "note": note,
        "created_at": now,
        "updated_at": now,
    }
    return insert_created(session, values)


def _check_checkpoint_source(
    session: Session, owner: User, spec: CheckpointReader, store: Storage | None = None
) -> None:
    """A sampling or evaluation job must name one of the caller's training jobs and, when it
    gives a step, a checkpoint that job has; a sampling job's latents must fit that job's
    generator (checked at submit, so the mistake is a 422 naming the field, not a failed job
    later)."""
    job_id = spec.job_id
    source = session.get(Job, job_id)
    readable = ("train", "script") if isinstance(spec, SampleSpec) else ("train",)
    kind = SAMPLED_KINDS.get(source.kind, "checkpoint") if source is not None else "checkpoint"
    if source is None or source.owner_id != owner.id or source.deleted_at is not None:
        path, message = "spec.job_id", f"no job {job_id!r} among your jobs"
    elif source.kind not in readable:
        named = " or ".join(readable)
        path, message = "spec.job_id", f"job {job_id} is a {source.kind} job; name a {named} job"
    elif spec.step is not None and latest_checkpoint(session, job_id, spec.step, kind) is None:
        steps = session.scalars(
            select(Artifact.step)
            .where(Artifact.job_id == job_id, Artifact.kind == kind)
            .order_by(Artifact.step)
        ).all()
        have = ", ".join(str(s) for s in steps[-10:]) or "none yet"
        path, message = "spec.step", f"job {job_id} has no {kind} at step {spec.step} ({have})"
    elif source.kind == "script" and latest_checkpoint(session, job_id, None, kind) is None:
        path, message = (
            "spec.job_id",
            (f"job {job_id} has saved no generator (worker.runtime.save_generator) yet"),
        )
    else:
        if isinstance(spec, SampleSpec):
            trained = (
                source.spec
                if source.kind == "train"
                else _saved_generator_spec(session, job_id, store)
            )
            if trained is not None:
                dim = LatentSpec.model_validate(trained.get("latent", {})).dim
                check_sample_inputs(session, owner, spec, dim, store)
                check_latent_space(spec, trained)
                check_sample_classes(spec, trained)
                check_sample_size(spec, trained)
                check_inversion_inputs(session, owner, spec, trained, store)
        return
    raise SpecError([{"path": path, "message": message}])


def _saved_generator_spec(
    session: Session, job_id: str, store: Storage | None
) -> dict[str, Any] | None:
    """The training spec a script job's saved generator was described with (its
    `generator/spec.json`), for the checks a training job's own spec serves; None when the
    store is not at hand (the worker checks again)."""
    row = session.scalar(
        select(Artifact).where(Artifact.job_id == job_id, Artifact.name == GENERATOR_SPEC_NAME)
    )
    if row is None or store is None:
        return None
    loaded: dict[str, Any] = json.loads(store.get(row.key))
    return loaded


def get_job(session: Session, owner: User, job_id: str) -> Job:
    """The job, if `owner` may see it: their own, or any job for an admin; never a deleted
    one."""
    job = session.get(Job, job_id)
    if job is None or job.deleted_at is not None:
        raise JobNotFoundError(job_id)
    if job.owner_id != owner.id and not owner.is_admin:
        raise JobNotFoundError(job_id)
    return job


# What a job's JSON shows (api/serializers.job_json) and who may see it. A poll reads exactly
# these as one row, without the ORM's identity map and object building: the most frequent
# request of all costs about a millisecond less of CPU.
JOB_VIEW_COLUMNS = (
    Job.id, Job.owner_id, Job.kind, Job.name, Job.state, Job.attempt, Job.max_attempts,
    Job.priority, Job.devices, Job.queue_position, Job.waiting_reason, Job.error, Job.spec,
    Job.progress, Job.metrics, Job.evaluation, Job.warnings, Job.tags, Job.note,
    Job.placement, Job.parent_id, Job.created_at, Job.updated_at, Job.started_at,
    Job.finished_at,
)  # fmt: skip


# Built once: constructing the statement cost as much CPU as running it.
_VIEW_ANY = select(*JOB_VIEW_COLUMNS).where(Job.id == bindparam("job_id"), Job.deleted_at.is_(None))
_VIEW_OWN = _VIEW_ANY.where(Job.owner_id == bindparam("owner_id"))


def view_job(session: Session, viewer: User, job_id: str) -> Row[Any]:
    """The job's JOB_VIEW_COLUMNS, read-only, if `viewer` may see it (as get_job decides)."""
    query = _VIEW_ANY if viewer.is_admin else _VIEW_OWN
    row = session.execute(query, {"job_id": job_id, "owner_id": viewer.id}).first()
    if row is None:
        raise JobNotFoundError(job_id)
    return row


def set_priority(session: Session, user: User, job_id: str, priority: int) -> Job:
    """Admins set any priority; owners may only lower their own job's (to let others go first)."""
    job = get_job(session, user, job_id)
    if not user.is_admin and priority > job.priority:
        raise PermissionDeniedError(
            f"only an admin can raise a priority; you may lower it below {job.priority}"
        )
    job.priority = priority
    session.flush()
    return job


def set_labels(
    session: Session, user: User, job_id: str, tags: list[str] | None, note: str | None
) -> Job:
    """Replace the job's tags and/or note (None leaves one as it is): its owner's, or an
    admin's. Labels are the researcher's filing, not the run's: any state may change them."""
    job = get_job(session, user, job_id)
    if tags is not None:
        job.tags = tags
    if note is not None:
        job.note = note
    session.flush()
    return job


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None


def list_jobs(
    session: Session,
    owner: User,
    *,
    state: str | None = None,
    kind: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
    every_user: bool = False,
    id_prefix: str | None = None,
    tags: Sequence[str] = (),
    text: str | None = None,
    parent: str | None = None,
) -> JobPage:
    """The owner's jobs (every user's for an admin who asks), newest first, `limit` at a time;
    pass `next_cursor` for the next page. `id_prefix` (lowercase hex, checked by the caller)
    keeps the jobs whose id starts with it: how a short id is resolved. `tags` keeps the
    jobs with every one of them, `text` those whose name or note holds it (any case),
    `parent` the children of that sweep (an id, checked by the caller)."""
    if every_user and not owner.is_admin:
        raise PermissionDeniedError("only an admin can list every user's jobs")
    query = select(Job).where(Job.deleted_at.is_(None))
    if not every_user:
        query = query.where(Job.owner_id == owner.id)
    if state:
        query = query.where(Job.state == state)
    if kind:
        query = query.where(Job.kind == kind)
    if id_prefix:
        query = query.where(Job.id.startswith(id_prefix, autoescape=True))
    if parent:
        query = query.where(Job.parent_id == parent)
    query = with_tags(query, tags)
    if text:
        query = matching_text(query, text)
    if cursor:
        created_at, last_id = _decode_cursor(cursor)
        # A row comparison, not `created_at < x OR (created_at = x AND id < y)`: PostgreSQL
        # reads it as a range of the (owner, created_at, id) index and stops after one page,
        # where the OR made it gather and sort every older job first (32 ms for a deep page
        # at 1,000,000 jobs, bench/db_scale.py).
        query = query.where(tuple_(Job.created_at, Job.id) < tuple_(created_at, last_id))
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
    jobs = list(session.scalars(query))
    has_more = len(jobs) > limit
    jobs = jobs[:limit]
    next_cursor = _encode_cursor(jobs[-1]) if has_more else None
    return JobPage(jobs=jobs, next_cursor=next_cursor)


def _encode_cursor(job: Job) -> str:
    raw = json.dumps([job.created_at.isoformat(), job.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) a cursor of ours holds; InvalidCursorError for anything else,
    before any query (a NUL in the id would be a database error, not a miss)."""
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, job_id = json.loads(raw)
        if not isinstance(created_at, str) or not is_our_id(job_id):
            raise ValueError("not a timestamp and a job id")
        return datetime.fromisoformat(created_at), job_id
    except (ValueError, TypeError) as exc:
        raise InvalidCursorError("cursor: not a cursor returned by this API") from exc


def cancel_job(session: Session, owner: User, job_id: str) -> Job:
    """Cancel a job: at once when no worker runs it, cooperatively when one does. Cancelling
    a sweep also cancels each of its unfinished children, in the same transaction.

    Cancelling a job that is already cancelling or cancelled changes nothing (idempotent);
    cancelling a finished job is a conflict.
    """
    job = get_job(session, owner, job_id)
    stop_job(session, job)
    if job.kind == "sweep":
        unfinished = session.scalars(
            select(Job).where(
                Job.parent_id == job.id,
                Job.state.not_in([s.value for s in (*TERMINAL, JobState.CANCELLING)]),
            )
        )
        for child in unfinished:
            stop_job(session, child, f"sweep {job.id} cancelled")
    session.refresh(job)
    return job


def stop_job(session: Session, job: Job, reason: str | None = None) -> None:
    """The cancel path of every job: a running one goes `cancelling` (its worker stops it at
    its next stop check and keeps a checkpoint), any other unfinished one `cancelled`.
    `reason`, when given, is the event's reason and the job's `error` (who stopped it, why).
    JobConflictError for a finished job."""
    fields: dict[str, Any] = {} if reason is None else {"error": reason}
    for _ in range(3):  # the state may move under us between the read and the compare-and-set
        current = JobState(job.state)
        if current in (JobState.CANCELLING, JobState.CANCELLED):
            break
        if current in TERMINAL:
            raise JobConflictError(f"job {job.id} already {current.value}; nothing to cancel")
        if current == JobState.RUNNING:
            target, said = JobState.CANCELLING, reason or "cancel requested"
        else:
            target, said = JobState.CANCELLED, reason or f"cancelled while {current.value}"
        if transition(session, job.id, current, target, said, **fields):
            break
        session.refresh(job)


def job_artifacts(session: Session, owner: User, job_id: str) -> list[Artifact]:
    get_job(session, owner, job_id)
    return list_artifacts(session, job_id)


def find_artifact(session: Session, owner: User, job_id: str, name: str) -> Artifact | None:
    get_job(session, owner, job_id)
    return session.scalar(select(Artifact).where(Artifact.job_id == job_id, Artifact.name == name))
