"""Liveness and readiness probes for load balancers and the embedded launcher."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from threading import Lock
from typing import Any

from celery import Celery
from flask import Blueprint
from sqlalchemy import Engine, text

from api.state import celery, settings, storage
from shared.db import get_engine

bp = Blueprint("health", __name__)

# Seconds to wait for the broker in /readyz: a probe must answer faster than its caller's
# timeout, and a broker slower than this is not ready in any useful sense.
BROKER_PROBE_TIMEOUT_S = 2.0
# /readyz answers within this, whatever hangs: load balancers probe with 3-5 s timeouts, and a
# probe must never hold a request thread for as long as a paused server would.
READY_TIMEOUT_S = 2.5
# The probes run here, not in request threads: a check stuck on a paused server ties up one of
# these, never a gunicorn thread. Checks still waiting simply report no answer.
_PROBES = ThreadPoolExecutor(max_workers=8, thread_name_prefix="readyz")
# At most one probe of each part in flight: while a paused server holds one, later /readyz
# calls share it (and its deadline) instead of queueing more behind it, so a flood of probes
# never fills the pool nor holds request threads for long. A probe that ended less than
# RESULT_TTL_S ago answers for the part without a new one.
RESULT_TTL_S = 1.0


@dataclass
class _Probe:
    future: Future[None]
    started: float
    finished: float | None = None

    def fresh(self, now: float) -> bool:
        return self.finished is None or now - self.finished < RESULT_TTL_S


_IN_FLIGHT: dict[str, _Probe] = {}
_IN_FLIGHT_LOCK = Lock()


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    """Database, broker and storage, probed side by side; answers within READY_TIMEOUT_S
    whatever hangs, each check with its own status."""
    engine, broker, store = get_engine(settings().database_url), celery(), storage()
    probes: dict[str, Callable[[], None]] = {
        "database": lambda: _select_one(engine),
        "broker": lambda: _reach_broker(broker),
        "storage": store.check,
    }
    running = {name: _probe(name, probe) for name, probe in probes.items()}
    deadline = max(probe.started for probe in running.values()) + READY_TIMEOUT_S
    wait([p.future for p in running.values()], timeout=max(0.0, deadline - time.monotonic()))
    checks = {}
    for name, probe in running.items():
        if not probe.future.done():
            waited = time.monotonic() - probe.started
            checks[name] = f"error: no answer after {waited:.1f} s"
        elif probe.future.exception() is not None:
            checks[name] = f"error: {probe.future.exception()}"
        else:
            checks[name] = "ok"
    ready = all(v == "ok" for v in checks.values())
    return {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503


def _probe(name: str, check: Callable[[], None]) -> _Probe:
    """The probe of `name` running or just ended, or a new one."""
    with _IN_FLIGHT_LOCK:
        probe = _IN_FLIGHT.get(name)
        if probe is None or not probe.fresh(time.monotonic()):
            probe = _IN_FLIGHT[name] = _Probe(_PROBES.submit(check), time.monotonic())
            probe.future.add_done_callback(partial(_finished, probe))
        return probe


def _finished(probe: _Probe, _future: Future[None]) -> None:
    probe.finished = time.monotonic()


def _select_one(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _reach_broker(broker: Celery) -> None:
    with broker.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=BROKER_PROBE_TIMEOUT_S)
