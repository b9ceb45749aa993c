"""The pool's nodes: workers register theirs with its devices, heartbeat, and are drained or
found dead here. A node's jobs go back to the queue when it dies or comes back from the dead."""

from __future__ import annotations

import uuid
from datetime import timedelta
from enum import Enum
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from shared.models import Job, Node, Reservation, utcnow
from shared.pool.reconciler import requeue_after_loss
from shared.pool.reservations import HOLDING_STATES
from shared.states import JobState

# Seconds between a worker's node heartbeats: a few per node timeout, so one slow database
# write never makes a healthy node look dead.
HEARTBEAT_FRACTION_OF_TIMEOUT = 1 / 5
MAX_HEARTBEAT_INTERVAL_S = 5.0


class NodeState(str, Enum):
    UP = "up"
    DRAINING = "draining"
    # Its worker stopped cleanly (SIGTERM), after giving its jobs back.
    STOPPED = "stopped"
    DEAD = "dead"


# States whose node heartbeats; silence in them means death.
LIVE_STATES = (NodeState.UP.value, NodeState.DRAINING.value)


class NodeNotFoundError(LookupError):
    """No node of that name is registered."""


class NodeBusyError(RuntimeError):
    """The node still holds jobs; drain it and wait for them to end first."""


def device_kind(devices: list[dict[str, Any]]) -> str:
    """ "gpu" for a node with GPUs, "cpu" for one offering CPU slots."""
    return "gpu" if any(device.get("kind") == "gpu" for device in devices) else "cpu"


def heartbeat_interval_s(node_timeout_s: float) -> float:
    return min(MAX_HEARTBEAT_INTERVAL_S, node_timeout_s * HEARTBEAT_FRACTION_OF_TIMEOUT)


def register_node(
    session: Session,
    *,
    name: str,
    queue: str,
    devices: list[dict[str, Any]],
    labels: dict[str, str],
    address: str = "",
) -> str:
    """Announce a (re)started worker's node; returns the boot id its heartbeats carry.

    Jobs the database still thinks run there belong to the node's previous life, whose
    processes are gone: they are requeued now rather than after a timeout. A draining node
    stays draining across restarts.
    """
    now, boot_id = utcnow(), uuid.uuid4().hex
    node = session.get(Node, name)
    if node is None:
        node = Node(name=name, state=NodeState.UP.value)
        session.add(node)
    elif node.state not in LIVE_STATES:
        node.state = NodeState.UP.value
    node.queue, node.devices, node.labels, node.address = queue, devices, labels, address
    node.boot_id, node.started_at, node.heartbeat_at = boot_id, now, now
    session.flush()
    _requeue_jobs_running_on(session, name, reason=f"node {name} restarted")
    return boot_id


def heartbeat_node(session: Session, name: str, boot_id: str) -> bool:
    """Record that the node lives. False when the node was declared dead (its jobs given away)
    or registered by another boot: the worker must stop those jobs and register again."""
    result = session.execute(
        update(Node)
        .where(Node.name == name, Node.boot_id == boot_id, Node.state.in_(LIVE_STATES))
        .values(heartbeat_at=utcnow())
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def mark_dead_nodes(session: Session, timeout_s: float) -> list[str]:
    """Declare nodes silent for `timeout_s` dead and requeue their jobs; returns their names."""
    cutoff = utcnow() - timedelta(seconds=timeout_s)
    silent = list(
        session.scalars(
            select(Node.name).where(Node.state.in_(LIVE_STATES), Node.heartbeat_at < cutoff)
        )
    )
    for name in silent:
        session.execute(update(Node).where(Node.name == name).values(state=NodeState.DEAD.value))
        _requeue_jobs_running_on(session, name, reason=f"node {name} silent for {timeout_s:.0f} s")
    return silent


def stop_taking_work(session: Session, name: str, boot_id: str) -> bool:
    """A worker begins a clean exit: its node is `stopped` at once, so the scheduler sends it
    nothing more while its running jobs give their devices back."""
    result = session.execute(
        update(Node)
        .where(Node.name == name, Node.boot_id == boot_id)
        .values(state=NodeState.STOPPED.value)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def retire_node(session: Session, name: str, boot_id: str) -> None:
    """A worker's clean exit is done: jobs sent to it but never started go back to the queue
    at once rather than after the node timeout."""
    if stop_taking_work(session, name, boot_id):
        _requeue_jobs_running_on(session, name, reason=f"node {name} stopped")


def _requeue_jobs_running_on(session: Session, name: str, reason: str) -> None:
    jobs = session.execute(
        select(Job.id, Job.state, Job.attempt, Job.max_attempts)
        .join(Reservation, Reservation.job_id == Job.id)
        .where(
            Reservation.node_name == name,
            Reservation.attempt == Job.attempt,
            Job.state.in_(HOLDING_STATES),
        )
        .distinct()
    ).all()
    for job_id, state, attempt, max_attempts in jobs:
        requeue_after_loss(session, job_id, JobState(state), attempt, max_attempts, reason)
    session.execute(delete(Reservation).where(Reservation.node_name == name))


def set_draining(session: Session, name: str, draining: bool) -> Node:
    node = _get(session, name)
    if node.state in LIVE_STATES:  # a dead or stopped node comes back up when it registers
        node.state = (NodeState.DRAINING if draining else NodeState.UP).value
    session.flush()
    return node


def remove_node(session: Session, name: str) -> None:
    """Forget a node. Refused while it holds devices; a worker that starts again re-registers."""
    _get(session, name)
    held = session.scalar(
        select(func.count()).select_from(Reservation).where(Reservation.node_name == name)
    )
    if held:
        raise NodeBusyError(f"node {name} holds {held} device(s) for running jobs; drain it first")
    session.execute(delete(Node).where(Node.name == name))


def _get(session: Session, name: str) -> Node:
    node = session.get(Node, name)
    if node is None:
        raise NodeNotFoundError(f"no node named {name!r}")
    return node
