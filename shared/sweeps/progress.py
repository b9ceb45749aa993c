"""The scheduler's pass over unfinished sweeps: start, judge, finish.

A sweep has no worker, so this pass is what moves it through the one state machine:
`queued -> running` when its first child leaves the queue; at each halving rung, the children
shared/sweeps/halving.py picks are stopped through the cancel path every job has (a running
child goes `cancelling`, its worker stops it at its next stop check and keeps its
checkpoint); once every child is final, `succeeded` if one of them succeeded, else `failed`
saying how they ended. A `cancelling` sweep (cancelled while running) becomes `cancelled` once
its children have stopped.

Each sweep moves in its own transaction: its children's stops, its rung record (kept in its
`progress`, with the counts the dashboard's bar reads) and its state change commit together.
A pass looks at no more than SWEEPS_PER_PASS sweeps, taking turns across passes, so a
thousand running sweeps cannot stall placement.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.jobs.requests import JobConflictError, stop_job
from shared.models import Job
from shared.specs import SweepSpec
from shared.states import ACTIVE, TERMINAL, JobState, transition
from shared.sweeps.halving import Entrant, figure_of, judge_rung

log = logging.getLogger(__name__)

SWEEPS_PER_PASS = 20
UNFINISHED = (JobState.QUEUED.value, JobState.RUNNING.value, JobState.CANCELLING.value)
# Children a rung waits for and may stop (a cancelling one is stopping already).
_STOPPABLE = frozenset({JobState.SCHEDULED.value, JobState.RUNNING.value})
_ACTIVE = frozenset(s.value for s in ACTIVE)


def unfinished_sweeps(session: Session, after: str = "", limit: int = SWEEPS_PER_PASS) -> list[str]:
    """Ids of up to `limit` unfinished sweeps whose id follows `after`, in id order."""
    return list(
        session.scalars(
            select(Job.id)
            .where(Job.kind == "sweep", Job.state.in_(UNFINISHED), Job.id > after)
            .order_by(Job.id)
            .limit(limit)
        )
    )


def advance_sweep(session: Session, sweep_id: str) -> None:
    """Move one sweep along as its children stand now (the caller commits)."""
    sweep = session.get(Job, sweep_id)
    if sweep is None or sweep.state not in UNFINISHED:
        return
    spec = SweepSpec.model_validate(sweep.spec)
    children = list(
        session.scalars(
            select(Job).where(Job.parent_id == sweep_id).order_by(Job.created_at, Job.id)
        )
    )
    state = JobState(sweep.state)
    if state == JobState.CANCELLING:
        for child in children:
            if child.state not in {s.value for s in TERMINAL} | {JobState.CANCELLING.value}:
                _stop(session, child, f"sweep {sweep_id} cancelled")
    started = [c for c in children if c.started_at is not None or c.state in _ACTIVE]
    if state == JobState.QUEUED and started:
        first = min(started, key=lambda c: (c.started_at is None, c.started_at or c.updated_at))
        if transition(session, sweep_id, state, JobState.RUNNING, f"child {first.name} started"):
            state = JobState.RUNNING
    progress = dict(sweep.progress or {})
    rungs: dict[str, dict[str, float | None]] = dict(progress.get("rungs") or {})
    halving = spec.stop.halving
    if state == JobState.RUNNING and halving is not None:
        entrants = [_entrant(child, index, halving.figure) for index, child in enumerate(children)]
        by_id = {c.id: c for c in children}
        for rung in halving.rungs:
            judged = rungs.get(str(rung), {})
            verdict = judge_rung(
                rung, halving.figure, halving.keep, entrants, judged, f"sweep {sweep_id}"
            )
            if verdict is None:
                break
            rungs[str(rung)] = {**judged, **verdict.judged}
            for child_id, reason in verdict.stops.items():
                _stop(session, by_id[child_id], reason)
                log.info("%s", reason, extra={"job_id": child_id})
    final = [c for c in children if c.state in {s.value for s in TERMINAL}]
    counts = Counter(c.state for c in children)
    progress = {
        "fraction": len(final) / len(children) if children else 1.0,
        "children": len(children),
        "finished": len(final),
        "rungs": rungs,
    }
    if progress != sweep.progress:
        sweep.progress = progress
    if len(final) == len(children):
        _finish(session, sweep_id, state, counts)


def _entrant(child: Job, index: int, figure: str) -> Entrant:
    step, value = figure_of(child.evaluation, figure)
    return Entrant(child.id, index, child.state in _STOPPABLE, step, value)


def _stop(session: Session, child: Job, reason: str) -> None:
    with contextlib.suppress(JobConflictError):  # it finished meanwhile: nothing to stop
        stop_job(session, child, reason)


def _finish(session: Session, sweep_id: str, state: JobState, counts: Counter[str]) -> None:
    """Every child is final: the sweep's own end."""
    said = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    # Queued still: every child was cancelled before one started.
    if state in (JobState.CANCELLING, JobState.QUEUED):
        transition(session, sweep_id, state, JobState.CANCELLED, f"children ended: {said}")
    elif counts[JobState.SUCCEEDED.value]:
        transition(session, sweep_id, state, JobState.SUCCEEDED, f"children ended: {said}")
    else:
        error = f"no child succeeded: {said}"
        transition(session, sweep_id, state, JobState.FAILED, error, error=error)
