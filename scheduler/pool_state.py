"""What a scheduler pass decides on, read from the database in one transaction: the queue,
the nodes with their free devices, each owner's recent usage and held devices, their quotas,
and the running jobs preemption may ask to stop."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from shared.models import Job, Node, Reservation, User, as_utc, utcnow
from shared.pool.nodes import NodeState, device_kind
from shared.pool.plan_values import NodeView, QueuedJob, RunningJob
from shared.pool.reservations import devices_in_use
from shared.states import JobState
from shared.sweeps.parallel import held_back

# Usage older than this many half-lives weighs under 1/16 and is not read at all.
USAGE_HALF_LIVES = 4


@dataclass(frozen=True)
class PoolState:
    """What one pass decides on: the queue in a form the policy reads, and the pool."""

    queue: list[QueuedJob]
    attempts: dict[str, int]
    nodes: list[NodeView]
    queues: dict[str, str]
    usage: dict[str, float]
    held: dict[str, int]
    quotas: dict[str, int | None]
    running: list[RunningJob]
    # Queued children of sweeps at their `max_parallel`, not offered to the policy: id -> why.
    held_back: dict[str, str] = field(default_factory=dict)


def read_pool(session: Session, half_life_s: float) -> PoolState:
    columns = (Job.owner_id, Job.devices, Job.created_at, Job.priority, Job.kind, Job.spec)
    rows = session.execute(
        select(Job.id, Job.attempt, *columns, Job.parent_id)
        .where(Job.state == JobState.QUEUED.value, Job.kind != "sweep")  # sweeps run no node
        .order_by(Job.created_at, Job.id)
    ).all()
    held = held_back(session, [(row.id, row.parent_id) for row in rows])
    queued = [tuple(row)[:-1] for row in rows if row.id not in held]
    queue = [
        QueuedJob(
            id=job_id,
            owner=owner,
            devices=devices,
            created_at=as_utc(created_at),
            priority=priority,
            kind=kind,
            device_type=spec.get("resources", {}).get("device_type", "auto"),
            labels=spec.get("resources", {}).get("labels", {}),
            nodes=spec.get("resources", {}).get("nodes", 1),
        )
        for job_id, _, owner, devices, created_at, priority, kind, spec in queued
    ]
    attempts = {row[0]: row[1] for row in queued}
    used = devices_in_use(session)
    nodes, queues = [], {}
    for node in session.scalars(select(Node).order_by(Node.name)):
        indexes = [int(device["index"]) for device in node.devices]
        nodes.append(
            NodeView(
                name=node.name,
                kind=device_kind(node.devices),
                total=len(indexes),
                free=tuple(i for i in indexes if i not in used.get(node.name, set())),
                labels=node.labels or {},
                accepting=node.state == NodeState.UP.value,
            )
        )
        queues[node.name] = node.queue
    return PoolState(
        queue=queue,
        attempts=attempts,
        nodes=nodes,
        queues=queues,
        usage=recent_usage(session, half_life_s),
        held=held_by_owner(session),
        quotas={user: limit for user, limit in session.execute(select(User.id, User.max_devices))},
        running=running_jobs(session),
        held_back=held,
    )


def running_jobs(session: Session) -> list[RunningJob]:
    """Jobs holding devices on one node, as preemption sees them."""
    rows = session.execute(
        select(Job.id, Reservation.node_name, Job.priority, Job.spec, Job.preempt_reason)
        .join(Reservation, Reservation.job_id == Job.id)
        .where(Job.state == JobState.RUNNING.value)
    )
    devices: dict[str, int] = defaultdict(int)
    seen: dict[str, RunningJob] = {}
    for job_id, node, priority, spec, preempt_reason in rows:
        devices[job_id] += 1
        seen[job_id] = RunningJob(
            id=job_id,
            node=node,
            devices=0,
            priority=priority,
            preemptible=bool(spec.get("resources", {}).get("preemptible", False)),
            stopping=preempt_reason is not None,
        )
    return [replace(job, devices=devices[job.id]) for job in seen.values()]


def recent_usage(
    session: Session, half_life_s: float, now: datetime | None = None
) -> dict[str, float]:
    """Device-seconds per owner, each run's weight halving every `half_life_s` since it ended
    (running jobs count in full up to now)."""
    now = now or utcnow()
    horizon = now - timedelta(seconds=USAGE_HALF_LIVES * half_life_s)
    rows = session.execute(
        select(Job.owner_id, Job.devices, Job.started_at, Job.finished_at).where(
            Job.started_at.is_not(None),
            or_(Job.finished_at.is_(None), Job.finished_at > horizon),
        )
    )
    usage: dict[str, float] = defaultdict(float)
    for owner, devices, started, finished in rows:
        end = as_utc(finished) if finished else now
        seconds = max(0.0, (end - as_utc(started or end)).total_seconds())
        age = (now - end).total_seconds()
        usage[owner] += devices * seconds * 0.5 ** (age / half_life_s)
    return dict(usage)


def held_by_owner(session: Session) -> dict[str, int]:
    held: dict[str, int] = defaultdict(int)
    rows = session.execute(select(Job.owner_id).join(Reservation, Reservation.job_id == Job.id))
    for (owner,) in rows:
        held[owner] += 1
    return dict(held)
