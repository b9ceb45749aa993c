"""Liveness and readiness probes for load balancers and the embedded launcher."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
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
    futures = {name: _PROBES.submit(probe) for name, probe in probes.items()}
    done, _ = wait(futures.values(), timeout=READY_TIMEOUT_S)
    checks = {}
    for name, future in futures.items():
        if future not in done:
            checks[name] = f"error: no answer within {READY_TIMEOUT_S:.1f} s"
        elif future.exception() is not None:
            checks[name] = f"error: {future.exception()}"
        else:
            checks[name] = "ok"
    ready = all(v == "ok" for v in checks.values())
    return {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503


def _select_one(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _reach_broker(broker: Celery) -> None:
    with broker.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=BROKER_PROBE_TIMEOUT_S)
