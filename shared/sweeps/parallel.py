"""`max_parallel`: which queued children of sweeps the scheduler may consider this pass.

Children are created queued with the sweep; a pass offers the policy (shared/pool/policy.py)
only as many of a sweep's queued children, in their order, as the sweep has room for (its
`max_parallel` less its children already scheduled, running or cancelling). The rest are held
back with a reason, keeping the queue itself the one place jobs wait: fair share, priority and
quotas then apply to the children offered as to any job of the submitter.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.models import Job
from shared.states import ACTIVE


def held_back(session: Session, queued: Iterable[tuple[str, str | None]]) -> dict[str, str]:
    """Of the queued jobs (id, parent id) in queue order, those not offered this pass: id ->
    why they wait."""
    by_parent: dict[str, list[str]] = defaultdict(list)
    for job_id, parent in queued:
        if parent is not None:
            by_parent[parent].append(job_id)
    if not by_parent:
        return {}
    parents = list(by_parent)
    limits = {
        sweep_id: int((spec or {}).get("max_parallel", 1))
        for sweep_id, spec in session.execute(select(Job.id, Job.spec).where(Job.id.in_(parents)))
    }
    active = dict(
        session.execute(  # type: ignore[arg-type]
            select(Job.parent_id, func.count())
            .where(Job.parent_id.in_(parents), Job.state.in_([s.value for s in ACTIVE]))
            .group_by(Job.parent_id)
        ).all()
    )
    held = {}
    for parent, children in by_parent.items():
        limit = limits.get(parent, 1)
        room = max(0, limit - active.get(parent, 0))
        for job_id in children[room:]:
            held[job_id] = (
                f"sweep {parent} runs at most {limit} of its children at once "
                f"({active.get(parent, 0)} started)"
            )
    return held
