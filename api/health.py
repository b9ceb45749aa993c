"""Liveness and readiness probes for load balancers and the embedded launcher."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from sqlalchemy import text

from api.state import celery, db_session, storage

bp = Blueprint("health", __name__)

# Seconds to wait for the broker in /readyz: a probe must answer faster than its caller's
# timeout, and a broker slower than this is not ready in any useful sense.
BROKER_PROBE_TIMEOUT_S = 2.0


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    checks: dict[str, str] = {}
    try:
        db_session().execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {exc}"
    try:
        with celery().connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=BROKER_PROBE_TIMEOUT_S)
        checks["broker"] = "ok"
    except Exception as exc:
        checks["broker"] = f"error: {exc}"
    try:
        storage().check()
        checks["storage"] = "ok"
    except Exception as exc:
        checks["storage"] = f"error: {exc}"
    ready = all(v == "ok" for v in checks.values())
    return {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503
