"""Which job attempt holds which device: rows in `reservations`, written in the same transaction
as the job's queued → scheduled change and deleted once its processes are gone.

Lock order: a transaction that changes both a job and its reservations locks the job row
first. The scheduler's passes (place, requeue, sweep) change the job, then the reservations; a
worker's claim does the same (`claim_share` locks the job before it marks its share), so the
two never wait on each other in opposite orders (PostgreSQL reported deadlocks when the claim
took the reservations first)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.orm import Session

from shared.models import Job, Reservation, utcnow
from shared.states import JobState

# States in which a job holds its devices: its processes may be starting, running or stopping.
HOLDING_STATES = (JobState.SCHEDULED.value, JobState.RUNNING.value, JobState.CANCELLING.value)


def reserve(
    session: Session, job_id: str, attempt: int, parts: tuple[tuple[str, tuple[int, ...]], ...]
) -> None:
    """Hold, for the attempt, the devices of each (node, indexes) part; the first part's node
    is node rank 0. The primary key refuses a device held twice."""
    session.add_all(
        Reservation(
            node_name=node, device_index=index, job_id=job_id, attempt=attempt, node_rank=rank
        )
        for rank, (node, devices) in enumerate(parts)
        for index in devices
    )
    session.flush()


def reserve_many(
    session: Session, holds: list[tuple[str, int, tuple[tuple[str, tuple[int, ...]], ...]]]
) -> None:
    """`reserve` for many (job id, attempt, parts) at once: one INSERT of every row. A device
    held twice fails the whole statement (IntegrityError), as `reserve` fails its job."""
    now = utcnow()
    rows = [
        {
            "node_name": node,
            "device_index": index,
            "job_id": job_id,
            "attempt": attempt,
            "node_rank": rank,
            "claimed": False,
            "created_at": now,
        }
        for job_id, attempt, parts in holds
        for rank, (node, devices) in enumerate(parts)
        for index in devices
    ]
    if rows:
        session.execute(insert(Reservation.__table__), rows)  # type: ignore[arg-type]


def release(
    session: Session, job_id: str, node: str | None = None, attempt: int | None = None
) -> None:
    """Free the job's devices: all of them, or those of one node and attempt (a gang member's
    exit; the attempt, so a later attempt placed on the same node keeps its own)."""
    where = [Reservation.job_id == job_id]
    if node is not None:
        where.append(Reservation.node_name == node)
    if attempt is not None:
        where.append(Reservation.attempt == attempt)
    session.execute(delete(Reservation).where(*where))


def release_jobs(session: Session, job_ids: list[str]) -> None:
    """`release` of every device of many jobs, in one statement."""
    if job_ids:
        session.execute(delete(Reservation).where(Reservation.job_id.in_(job_ids)))


@dataclass(frozen=True)
class NodeShare:
    """One node's part of an attempt: its place in the gang and the devices it holds."""

    node_rank: int
    nodes: int
    devices: list[int]


def claim_share(session: Session, job_id: str, attempt: int, node: str) -> NodeShare | None:
    """Take the attempt's share of `node`, once: None when there is none, or it was taken
    already (a duplicated or redelivered message)."""
    # The job row first, as every other writer of both tables does (see the module docstring).
    session.execute(select(Job.id).where(Job.id == job_id).with_for_update())
    taken = session.execute(
        update(Reservation)
        .where(
            Reservation.job_id == job_id,
            Reservation.attempt == attempt,
            Reservation.node_name == node,
            Reservation.claimed.is_(False),
        )
        .values(claimed=True)
        .execution_options(synchronize_session=False)
    )
    if not taken.rowcount:  # type: ignore[attr-defined]
        return None
    rows = session.execute(
        select(Reservation.node_name, Reservation.node_rank, Reservation.device_index).where(
            Reservation.job_id == job_id, Reservation.attempt == attempt
        )
    ).all()
    mine = sorted(index for name, _, index in rows if name == node)
    node_rank = next(rank for name, rank, _ in rows if name == node)
    return NodeShare(node_rank=node_rank, nodes=len({name for name, _, _ in rows}), devices=mine)


def unclaimed_nodes(session: Session, job_ids: list[str]) -> set[str]:
    """The nodes that still hold an unclaimed share of these jobs: those that were sent the
    job and never started it."""
    if not job_ids:
        return set()
    rows = session.scalars(
        select(Reservation.node_name).where(
            Reservation.job_id.in_(job_ids), Reservation.claimed.is_(False)
        )
    )
    return set(rows)


def release_stale(session: Session) -> int:
    """Free devices whose job no longer holds them (finished, back in the queue, or a later
    attempt runs): the sweep behind every path that forgot, or could not, release."""
    stale = (
        select(Reservation.job_id)
        .join(Job, Job.id == Reservation.job_id)
        .where(or_(Job.state.not_in(HOLDING_STATES), Job.attempt != Reservation.attempt))
    )
    ids = set(session.scalars(stale))
    if ids:
        session.execute(delete(Reservation).where(Reservation.job_id.in_(ids)))
    return len(ids)


def held_devices(session: Session, job_id: str, attempt: int) -> dict[str, list[int]]:
    """The devices the attempt holds, by node."""
    rows = session.execute(
        select(Reservation.node_name, Reservation.device_index)
        .where(and_(Reservation.job_id == job_id, Reservation.attempt == attempt))
        .order_by(Reservation.node_name, Reservation.device_index)
    )
    held: dict[str, list[int]] = defaultdict(list)
    for node, index in rows:
        held[node].append(index)
    return dict(held)


def devices_in_use(session: Session) -> dict[str, set[int]]:
    """Reserved device indexes by node."""
    used: dict[str, set[int]] = defaultdict(set)
    for node, index in session.execute(select(Reservation.node_name, Reservation.device_index)):
        used[node].add(index)
    return used
