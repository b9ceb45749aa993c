"""The scheduler: one loop, holding a lease, that places queued jobs on nodes and sends them.

Each pass: (1) find dead nodes and silent jobs and requeue their work, free stale reservations;
(2) read the queue, the nodes and their free devices, and each user's recent usage, and ask the
policy (`shared.pool.policy`) for placements; (3) in chunks of a few hundred placements
(scheduler/placing.py), move each job queued → scheduled and reserve its devices, commit, and
only then send the messages to each node's own queue, so a worker never receives a job the
database does not hold devices for (if a send fails, the job goes back to queued and its
devices are freed); (4) write every
waiting job's position and reason, and ask the running jobs the policy preempts to stop.
Before (2), sweeps move along (scheduler/sweep_pass.py): started, judged at their rungs,
finished.

Between passes the loop waits for a wake-up (`shared.pool.wakeup`: the API and workers
send one when a job is submitted, cancelled or ends) or GANFORGE_SCHEDULER_POLL_S, whichever
comes first. Only the holder of the lease row runs passes; a second scheduler waits and takes
over within LEASE_S (or three poll intervals, if longer) of the first one's death.

Webhook deliveries are sent by a thread of the same process (scheduler/deliveries.py says why
not from the loop); it stops with `stop`, or with the process.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

from celery import Celery
from sqlalchemy import bindparam, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from scheduler.backoff import BrokerGate, NodeBackoff
from scheduler.deliveries import start_deliverer
from scheduler.housekeeping import Housekeeping
from scheduler.pass_failures import PassFailures
from scheduler.placing import place
from scheduler.pool_state import PoolState, read_pool
from scheduler.sweep_pass import SweepPass
from shared.config import Settings
from shared.db import session_scope
from shared.hardening import harden_service_process
from shared.messaging import broker_reachable
from shared.models import Job, SchedulerLease, utcnow
from shared.pool.nodes import mark_dead_nodes
from shared.pool.plan_values import Plan, Waiting
from shared.pool.policy import plan
from shared.pool.preemption import request_preemption
from shared.pool.reconciler import reconcile, requeue_unclaimed
from shared.pool.reservations import release_stale, unclaimed_nodes
from shared.pool.wakeup import Wakeups
from shared.states import JobState

log = logging.getLogger(__name__)

# Seconds between looks for dead nodes and silent jobs.
RECONCILE_INTERVAL_S = 2.0
# A scheduler holds the lease this long past its last pass; a stand-by takes over after it.
LEASE_S = 10.0
# A lease outlives this many idle waits (GANFORGE_SCHEDULER_POLL_S), so a long poll interval
# never lets a stand-by take over from a live scheduler that was merely not woken.
LEASE_POLLS = 3
# A pass renews the lease only when this share of it has gone by since the last renewal: a
# burst of wake-ups (each submission, each job's end) then costs no lease round trips, and
# the lease never has less than three quarters of its time left while we lead.
RENEW_AFTER_SHARE = 0.25
LEASE_NAME = "scheduler"
# A probe of a broker that was down waits this long for a connection.
BROKER_PROBE_TIMEOUT_S = 2.0


def scheduler_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def acquire_lease(session: Session, holder: str, lease_s: float = LEASE_S) -> bool:
    """Take or renew the scheduling lease; False while another live scheduler holds it."""
    now = utcnow()
    expires = now + timedelta(seconds=lease_s)
    if session.get(SchedulerLease, LEASE_NAME) is None:
        try:
            with session.begin_nested():
                session.add(SchedulerLease(name=LEASE_NAME, holder=holder, expires_at=expires))
            return True
        except IntegrityError:
            pass  # another scheduler created it first; compete below
    taken = session.execute(
        update(SchedulerLease)
        .where(
            SchedulerLease.name == LEASE_NAME,
            or_(SchedulerLease.holder == holder, SchedulerLease.expires_at < now),
        )
        .values(holder=holder, expires_at=expires)
    )
    return taken.rowcount == 1  # type: ignore[attr-defined]


def reconcile_once(
    settings: Settings, judge_silence: bool = True, backoff: NodeBackoff | None = None
) -> list[str]:
    """Requeue the work of dead nodes and silent jobs, and jobs placed whose message was never
    taken (their nodes go to `backoff`); free reservations nobody holds. `judge_silence=False`
    skips the first two (right after the scheduler itself could not reach the database,
    silence proves nothing)."""
    moved: list[str] = []
    with session_scope(settings.database_url) as session:
        if judge_silence:
            dead = mark_dead_nodes(session, settings.node_timeout_s)
            if dead:
                log.warning("nodes declared dead: %s", ", ".join(dead))
            moved += reconcile(session, settings.job_silence_s)
        unclaimed = requeue_unclaimed(session, settings.claim_timeout_s)
        missed = unclaimed_nodes(session, unclaimed)  # before the sweep frees their rows
        moved += unclaimed
        release_stale(session)
    if backoff is not None and missed:
        backoff.missed(missed)
    return moved


def plan_pass(settings: Settings, shunned: frozenset[str] = frozenset()) -> tuple[PoolState, Plan]:
    """Read the pool and decide: what one pass would place, preempt and leave waiting.
    `shunned` nodes (see scheduler.backoff.NodeBackoff) are placed on last."""
    with session_scope(settings.database_url) as session:
        pool = read_pool(session, settings.usage_half_life_s)
    if shunned:
        nodes = [replace(node, shunned=node.name in shunned) for node in pool.nodes]
        pool = replace(pool, nodes=nodes)
    decided = plan(
        pool.queue,
        pool.nodes,
        usage=pool.usage,
        held=pool.held,
        quotas=pool.quotas,
        running=pool.running,
    )
    if pool.held_back:  # after every job the policy was offered
        ahead = len(decided.waiting)
        for position, (job_id, reason) in enumerate(pool.held_back.items(), ahead + 1):
            decided.waiting[job_id] = Waiting(position, reason)
    return pool, decided


def schedule_once(
    settings: Settings,
    celery: Celery,
    gate: BrokerGate | None = None,
    shunned: frozenset[str] = frozenset(),
) -> int:
    """One placement pass; returns how many jobs were sent to nodes. While `gate` is shut
    (the broker was unreachable at the last send and no probe has reached it since), nothing
    is placed: the jobs it would have placed wait, saying so."""
    with _collector_paused():
        return _schedule(settings, celery, gate, shunned)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off for one pass. A pass builds tens of thousands of short-lived,
    acyclic objects (rows, queued jobs, node views, messages), each batch of which set off a
    collection that scanned every object alive: 190 of a 350 ms pool read at 10,000 queued jobs.
    Reference counting still frees them; any cycles wait for the collector until the pass ends."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _schedule(
    settings: Settings, celery: Celery, gate: BrokerGate | None, shunned: frozenset[str]
) -> int:
    pool, decided = plan_pass(settings, shunned)
    if gate is not None and decided.placements and not gate.open():
        # They would have started first, so they head the queue.
        reasons = [(p.job_id, "waiting for the message broker") for p in decided.placements]
        reasons += [(job_id, w.reason) for job_id, w in decided.waiting.items()]
        waiting = {job_id: Waiting(i, reason) for i, (job_id, reason) in enumerate(reasons, 1)}
        decided = replace(decided, placements=[], waiting=waiting)
    sent = place(settings, celery, pool, decided.placements, gate)
    _write_waiting(settings, decided)
    if decided.preemptions:
        with session_scope(settings.database_url) as session:
            for preemption in decided.preemptions:
                request_preemption(session, [preemption.job_id], preemption.reason)
    return sent


def _write_waiting(settings: Settings, decided: Plan) -> None:
    """Store each waiting job's position and reason, touching only rows that changed."""
    if not decided.waiting:
        return
    with session_scope(settings.database_url) as session:
        if session.get_bind().dialect.name == "postgresql":
            _write_waiting_at_once(session, decided)
            return
        current: dict[str, tuple[int | None, str | None]] = {
            job_id: (position, reason)
            for job_id, position, reason in session.execute(
                select(Job.id, Job.queue_position, Job.waiting_reason).where(
                    Job.id.in_(list(decided.waiting)), Job.state == JobState.QUEUED.value
                )
            )
        }
        changed = [
            {"job": job_id, "position": waiting.position, "reason": waiting.reason}
            for job_id, waiting in decided.waiting.items()
            if job_id in current and current[job_id] != (waiting.position, waiting.reason)
        ]
        if changed:  # one statement, many parameter sets: a round trip, not one per job
            jobs = Job.__table__
            session.execute(
                update(jobs)  # type: ignore[arg-type]
                .where(jobs.c.id == bindparam("job"), jobs.c.state == JobState.QUEUED.value)
                .values(queue_position=bindparam("position"), waiting_reason=bindparam("reason")),
                changed,
            )


# PostgreSQL compares and writes every waiting job's position and reason in one statement
# (three arrays as parameters): 10,000 waiting jobs cost one round trip and no read-back,
# where one UPDATE per changed job (most of them, as the jobs ahead start) took most of a
# second.
_WAITING_AT_ONCE = text(
    """
    UPDATE jobs SET queue_position = w.position, waiting_reason = w.reason
    FROM unnest(CAST(:ids AS text[]), CAST(:positions AS integer[]), CAST(:reasons AS text[]))
        AS w(id, position, reason)
    WHERE jobs.id = w.id AND jobs.state = :queued
      AND (jobs.queue_position IS DISTINCT FROM w.position
           OR jobs.waiting_reason IS DISTINCT FROM w.reason)
    """
)


def _write_waiting_at_once(session: Session, decided: Plan) -> None:
    waiting = decided.waiting
    session.execute(
        _WAITING_AT_ONCE,
        {
            "ids": list(waiting),
            "positions": [w.position for w in waiting.values()],
            "reasons": [w.reason for w in waiting.values()],
            "queued": JobState.QUEUED.value,
        },
    )


def run_forever(settings: Settings, celery: Celery, stop: threading.Event | None = None) -> None:
    """Schedule until interrupted or until `stop` is set; stand by while another holds the lease.

    Between passes it waits for a wake-up (shared/pool/wakeup.py) or the poll interval."""
    harden_service_process()  # no same-uid process reads its environment or memory
    holder = scheduler_id()
    wakeups = Wakeups(settings)
    lease_s = max(LEASE_S, LEASE_POLLS * settings.scheduler_poll_s)
    log.info("scheduler %s started", holder)
    heartbeat_file = settings.scheduler_heartbeat_file
    with contextlib.suppress(OSError):
        heartbeat_file.parent.mkdir(parents=True, exist_ok=True)
    gate = BrokerGate(probe=lambda: broker_reachable(celery, BROKER_PROBE_TIMEOUT_S))
    backoff = NodeBackoff(first_backoff_s=settings.claim_timeout_s)
    failures = PassFailures()
    housekeeping = Housekeeping(settings)
    sweeps = SweepPass(settings)
    last_reconcile, last_contact, renewed_at = 0.0, float("-inf"), float("-inf")
    # Nodes heartbeat every few seconds: after our own start or our own outage, give them one
    # node timeout to be heard before anyone is declared dead for a silence we could not see.
    grace = settings.node_timeout_s
    judge_after = time.monotonic() + grace
    start_deliverer(settings, stop or threading.Event())
    while stop is None or not stop.is_set():
        # The loop still turns (leading, standing by or waiting out a database outage): a
        # container health check reads this file's age.
        with contextlib.suppress(OSError):
            heartbeat_file.touch()
        try:
            now = time.monotonic()
            # Skipped only right after a whole pass went through: the database answered then.
            leading = now - renewed_at < lease_s * RENEW_AFTER_SHARE
            if not leading:
                with session_scope(settings.database_url) as session:
                    leading = acquire_lease(session, holder, lease_s)
                renewed_at = now if leading else float("-inf")
            if now - last_contact > grace / 2:
                judge_after = max(judge_after, now + grace)
            last_contact = now
            if leading:
                if now - last_reconcile > RECONCILE_INTERVAL_S:
                    last_reconcile = now
                    reconcile_once(settings, now >= judge_after, backoff)
                housekeeping.maybe_run()
                sweeps.run()  # before placement: a child the sweep stopped frees its slot
                sent = schedule_once(settings, celery, gate, backoff.shunned())
                failures.success()
                if sent:
                    continue
            else:
                failures.success()
        except Exception as error:  # a database hiccup must not kill the loop
            failures.failure(error)
            renewed_at = float("-inf")  # the next turn checks the lease (and the database)
        wakeups.wait()
