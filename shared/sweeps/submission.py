"""Submitting a sweep: the sweep's row and one queued training job per child, all in the
caller's transaction, so a sweep exists with all its children or not at all.

The children are ordinary training jobs of the submitter (fair share, quotas and admission
apply to each as to any of theirs) that name the sweep in `parent_id`; the scheduler starts at
most `max_parallel` of them at once (scheduler/pool_state.py). The sweep itself holds no
devices and is never sent to a worker: shared/sweeps/progress.py moves it along.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.orm import Session

from shared.jobs.requests import submit_job
from shared.models import Job, User, utcnow
from shared.pool.admission import LiveNodes
from shared.specs import SpecError, SweepSpec
from shared.states import JobState, insert_created
from shared.storage import Storage
from shared.sweeps.expansion import expand, reprefixed

# Job names are at most this long (shared/specs/request.py JobRequest.name).
MAX_NAME_LENGTH = 200


def submit_sweep(
    session: Session,
    owner: User,
    name: str,
    spec: SweepSpec,
    *,
    max_attempts: int,
    data_roots: Sequence[Path] = (),
    store: Storage | None = None,
    tags: Sequence[str] = (),
    note: str = "",
    live_nodes: LiveNodes | None = None,
) -> Job:
    """Create the queued sweep and its children `<name>/<index>`; SpecError (nothing created)
    when a child is refused, naming it by index."""
    children = expand(spec)
    longest = f"{name}/{len(children) - 1}"
    if len(longest) > MAX_NAME_LENGTH:
        message = f"the children are named {longest!r}: keep it to {MAX_NAME_LENGTH} characters"
        raise SpecError([{"path": "name", "message": message}])
    now = utcnow()
    values = {
        "owner_id": owner.id,
        "kind": "sweep",
        "name": name,
        "spec": spec.model_dump(mode="json"),
        "state": JobState.QUEUED.value,
        "attempt": 1,
        "max_attempts": max_attempts,
        "devices": 0,
        "tags": list(tags),
        "note": note,
        "created_at": now,
        "updated_at": now,
    }
    sweep = insert_created(session, values)
    for child in children:
        try:
            job = submit_job(
                session,
                owner,
                "train",
                f"{name}/{child.index}",
                child.spec,
                max_attempts=max_attempts,
                data_roots=data_roots,
                store=store,
                tags=tags,
                live_nodes=live_nodes,
            )
        except SpecError as refused:
            raise SpecError(reprefixed(refused.problems, child.index)) from None
        job.parent_id = sweep.id
    session.flush()
    return sweep
