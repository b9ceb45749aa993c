"""Which job attempt holds which device: rows in `reservations`, written in the same transaction
as the job's queued → scheduled change and deleted once its processes are gone."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session

from shared.models import Job, Reservation
from shared.states import JobState

# States in which a job holds its devices: its processes may be starting, running or stopping.
HOLDING_STATES = (JobState.SCHEDULED.value, JobState.RUNNING.value, JobState.CANCELLING.value)


def reserve(
    session: Session, job_id: str, attempt: int, node: str, devices: tuple[int, ...]
) -> None:
    """Hold `devices` of `node` for the attempt. The primary key refuses a device held twice."""
    session.add_all(
        Reservation(node_name=node, device_index=index, job_id=job_id, attempt=attempt)
        for index in devices
    )
    session.flush()


def release(session: Session, job_id: str) -> None:
    session.execute(delete(Reservation).where(Reservation.job_id == job_id))


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
