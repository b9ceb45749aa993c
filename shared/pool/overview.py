"""The pool as everyone may see it: nodes, who holds each device, and the queue in order with
reasons (like `squeue`). Job details and artifacts stay their owners'; ids, owners, sizes and
states are public inside the lab, so people can see why they wait."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.models import Job, Node, Reservation, User, as_utc
from shared.pool.reservations import HOLDING_STATES
from shared.states import JobState


class QuotaExceededError(RuntimeError):
    """The user already has as many queued jobs as their quota allows."""


def pool_overview(session: Session) -> dict[str, Any]:
    names = {user: name for user, name in session.execute(select(User.id, User.name))}
    holders = {
        (node, index): (job_id, names.get(owner, owner))
        for node, index, job_id, owner in session.execute(
            select(
                Reservation.node_name, Reservation.device_index, Reservation.job_id, Job.owner_id
            ).join(Job, Job.id == Reservation.job_id)
        )
    }
    nodes = [
        {
            "name": node.name,
            "state": node.state,
            "labels": node.labels,
            "heartbeat_at": as_utc(node.heartbeat_at).isoformat(),
            "devices": [
                _held(device, holders.get((node.name, device["index"]))) for device in node.devices
            ],
        }
        for node in session.scalars(select(Node).order_by(Node.name))
    ]
    waiting = session.scalars(
        select(Job)
        # A sweep waits for nothing of the pool's: its children are the queue's.
        .where(Job.state == JobState.QUEUED.value, Job.kind != "sweep")
        .order_by(Job.queue_position.is_(None), Job.queue_position, Job.created_at)
    )
    active = session.scalars(
        select(Job).where(Job.state.in_(HOLDING_STATES)).order_by(Job.started_at, Job.created_at)
    )
    return {
        "nodes": nodes,
        "queue": [_public_job(job, names) for job in waiting],
        "active": [_public_job(job, names) for job in active],
    }


def _held(device: dict[str, Any], holder: tuple[str, str] | None) -> dict[str, Any]:
    """A device with the job and owner holding it (None, None when free)."""
    job_id, owner = holder or (None, None)
    return {**device, "job_id": job_id, "owner": owner}


def _public_job(job: Job, names: dict[str, str]) -> dict[str, Any]:
    return {
        "id": job.id,
        "owner": names.get(job.owner_id, job.owner_id),
        "kind": job.kind,
        "name": job.name,
        "state": job.state,
        "devices": job.devices,
        "priority": job.priority,
        "position": job.queue_position,
        "waiting_reason": job.waiting_reason,
        "created_at": as_utc(job.created_at).isoformat(),
    }


def check_queued_quota(session: Session, owner: User) -> None:
    if owner.max_queued_jobs is None:
        return
    queued = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.owner_id == owner.id, Job.state == JobState.QUEUED.value)
    )
    if (queued or 0) >= owner.max_queued_jobs:
        raise QuotaExceededError(
            f"you have {queued} queued jobs, your quota is {owner.max_queued_jobs}; "
            "wait for some to start or cancel one"
        )
