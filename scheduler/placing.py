"""Placing what a pass decided: each job moves queued -> scheduled with its reservations, is
committed, and only then is sent to its nodes' queues.

Jobs are committed in chunks of PLACE_CHUNK, each chunk one transaction (`transition_many` and
`reserve_many`: a few statements, not a few per job), and each chunk's messages go out through
one held Celery producer, pipelined as one batch, before the next chunk is committed. A
scheduler that dies between a commit and its sends leaves `scheduled` jobs nobody was told
of: the claim timeout requeues them. A device taken since the pool was read fails the chunk's
INSERT; the chunk is then committed again one job at a time, so only the job that lost its
device waits for the next pass. A job cancelled meanwhile is simply not moved. A job whose
message cannot be sent goes back to queued and frees its devices.
"""

from __future__ import annotations

import logging
import uuid
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from celery import Celery
from kombu import Producer
from sqlalchemy.exc import IntegrityError

from scheduler.backoff import BrokerGate
from scheduler.pool_state import PoolState
from shared.config import Settings
from shared.db import session_scope
from shared.messaging import send_run_job
from shared.pool.plan_values import Placement
from shared.pool.reservations import release_jobs, reserve, reserve_many
from shared.states import JobState, Move, transition, transition_many

log = logging.getLogger(__name__)

# Placements per transaction. Each costs a handful of statements whatever its size, so a few
# hundred jobs make them cheap per job (about 1,300 placements at 10,000 queued jobs on 1,000
# nodes is six chunks), while a chunk's messages still go out well within a worker's claim
# timeout of its commit, and a conflict retries only this many one by one.
PLACE_CHUNK = 250
# Broker commands a send batch holds before it flushes: more than a chunk's messages need (one
# or two commands each, PLACE_CHUNK jobs, most on one node), so a chunk flushes once, at its
# end, and a failed flush is known to be the whole chunk's.
BATCH_COMMANDS = 100_000


def place(
    settings: Settings,
    celery: Celery,
    pool: PoolState,
    placements: list[Placement],
    gate: BrokerGate | None = None,
) -> int:
    """Commit and send `placements`, chunk by chunk; returns how many jobs were sent. While
    `gate` is shut, the chunks not yet committed wait for the next pass."""
    sent = 0
    for start in range(0, len(placements), PLACE_CHUNK):
        if gate is not None and not gate.open():
            break  # the broker went away during this pass: the rest wait for the next
        chunk = placements[start : start + PLACE_CHUNK]
        task_ids = commit_placements(settings, pool, chunk)
        committed = [(p, task_ids[p.job_id]) for p in chunk if p.job_id in task_ids]
        sent += send_placements(settings, celery, pool, committed, gate)
    return sent


def commit_placements(
    settings: Settings, pool: PoolState, chunk: list[Placement]
) -> dict[str, str]:
    """Move the chunk's jobs queued -> scheduled and reserve their devices in one commit;
    returns, by job id, the id each one's first message will carry. A job cancelled
    meanwhile is left out; a device taken meanwhile sends the chunk through
    `commit_placement` one job at a time, leaving out that job alone."""
    task_ids = {p.job_id: uuid.uuid4().hex for p in chunk}
    moves = [
        Move(
            p.job_id,
            pool.attempts[p.job_id],
            f"placed on {_where(p)}",
            _placed_fields(p, task_ids[p.job_id]),
        )
        for p in chunk
    ]
    try:
        with session_scope(settings.database_url) as session:
            moved = transition_many(
                session,
                moves,
                JobState.QUEUED,
                JobState.SCHEDULED,
                queue_position=None,
                waiting_reason=None,
            )
            reserve_many(
                session,
                [(p.job_id, pool.attempts[p.job_id], p.parts) for p in chunk if p.job_id in moved],
            )
    except IntegrityError:
        log.info(
            "a device of %d placements was taken meanwhile; placing them one by one", len(chunk)
        )
        one_by_one = {p.job_id: commit_placement(settings, pool, p) for p in chunk}
        return {job_id: task_id for job_id, task_id in one_by_one.items() if task_id}
    return {job_id: task_ids[job_id] for job_id in moved}


def commit_placement(settings: Settings, pool: PoolState, placement: Placement) -> str | None:
    """Move the job queued -> scheduled and reserve its devices in one commit; returns the
    id its first message will carry, or None if the job or a device moved meanwhile."""
    job_id, attempt = placement.job_id, pool.attempts[placement.job_id]
    # Our own id for the first message, stored with the state change: one commit per job.
    task_id = uuid.uuid4().hex
    try:
        with session_scope(settings.database_url) as session:
            if not transition(
                session,
                job_id,
                JobState.QUEUED,
                JobState.SCHEDULED,
                f"placed on {_where(placement)}",
                attempt=attempt,
                queue_position=None,
                waiting_reason=None,
                **_placed_fields(placement, task_id),
            ):
                return None  # cancelled meanwhile
            reserve(session, job_id, attempt, placement.parts)
    except IntegrityError:  # a device was taken since we read the pool: next pass
        return None
    return task_id


def send_placements(
    settings: Settings,
    celery: Celery,
    pool: PoolState,
    committed: list[tuple[Placement, str]],
    gate: BrokerGate | None = None,
) -> int:
    """Send each committed job's messages (one per node of its gang) through one producer, as
    one pipelined batch where the transport batches (Redis: one round trip for the chunk,
    not one per message); returns how many jobs were sent. The jobs whose messages failed go
    back to queued and free their devices: all of a batch that failed, since none of it is
    known to have arrived (a message that did arrive finds its share released, and its node
    starts nothing)."""
    if not committed:
        return 0
    sent: list[Placement] = []
    failed: list[tuple[Placement, BaseException]] = []
    try:
        with celery.producer_or_acquire() as producer, _batch(producer):
            for placement, task_id in committed:
                try:
                    _send_one(celery, pool, placement, task_id, producer)
                except Exception as exc:  # a transport that sends at once failed this one
                    failed.append((placement, exc))
                else:
                    sent.append(placement)
    except Exception as exc:  # the batch (or the connection for it) failed
        failed += [(placement, exc) for placement in sent]
        sent = []
    if failed:
        _give_back_unsent(settings, pool, failed, gate)
    return len(sent)


def _batch(producer: Producer) -> AbstractContextManager[object]:
    """The producer's publish batch; kombu before 5.7 has none and sends each at once."""
    batch = getattr(producer, "batch", None)
    return batch(max_size=BATCH_COMMANDS) if batch is not None else nullcontext()


def _send_one(
    celery: Celery, pool: PoolState, placement: Placement, task_id: str, producer: Producer
) -> None:
    """One message per node of the gang; each node's worker starts its own ranks."""
    job_id, attempt = placement.job_id, pool.attempts[placement.job_id]
    for rank, (node, _) in enumerate(placement.parts):
        send_run_job(celery, job_id, attempt, pool.queues[node],
                     task_id if rank == 0 else None, producer=producer)  # fmt: skip


def _give_back_unsent(
    settings: Settings,
    pool: PoolState,
    failed: list[tuple[Placement, BaseException]],
    gate: BrokerGate | None,
) -> None:
    """Placed jobs whose messages did not go out: back to queued, their devices freed."""
    for placement, exc in failed:
        job_id, attempt = placement.job_id, pool.attempts[placement.job_id]
        log.warning(
            "could not send job %s: %s", job_id, exc, extra={"job_id": job_id, "attempt": attempt}
        )
        if gate is not None:
            gate.send_failed(exc)
    moves = [
        Move(p.job_id, pool.attempts[p.job_id], f"broker unavailable: {exc}") for p, exc in failed
    ]
    with session_scope(settings.database_url) as session:
        transition_many(session, moves, JobState.SCHEDULED, JobState.QUEUED)
        release_jobs(session, [p.job_id for p, _ in failed])


def _where(placement: Placement) -> str:
    return " + ".join(
        f"{node} device{'s' if len(devices) > 1 else ''} {','.join(map(str, devices))}"
        for node, devices in placement.parts
    )


def _placed_fields(placement: Placement, task_id: str) -> dict[str, Any]:
    placed = [{"node": node, "devices": list(devices)} for node, devices in placement.parts]
    return {"task_id": task_id, "placement": placed}
