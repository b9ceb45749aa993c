"""A sweep's children as its job JSON shows them: how many in each state, and their ids in
the sweep's order (GET /api/v1/jobs?parent=<id> lists them in full)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.models import Job
from shared.states import ACTIVE

_ACTIVE = frozenset(s.value for s in ACTIVE)


def children_of(session: Session, sweep_id: str) -> dict[str, Any]:
    rows = session.execute(
        select(Job.id, Job.state).where(Job.parent_id == sweep_id).order_by(Job.created_at, Job.id)
    ).all()
    return summary([(job_id, state) for job_id, state in rows], sweep_id)


def summary(children: list[tuple[str, str]], sweep_id: str) -> dict[str, Any]:
    """From (id, state) pairs in the children's order."""
    return {
        "total": len(children),
        "states": dict(Counter(state for _, state in children)),
        "active": sum(state in _ACTIVE for _, state in children),
        "ids": [job_id for job_id, _ in children],
        "links": {"list": f"/api/v1/jobs?parent={sweep_id}"},
    }
