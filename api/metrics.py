"""GET /metrics: the pool and the API in Prometheus's text format.

The pool's figures (jobs by state, queue waits, run times, devices per node, training speed)
are read from the database at each scrape (api/db_metrics.py), so every gunicorn
process answers the same. The API's own figures, request latency by route and storage errors,
are counted in each process; under gunicorn they go through prometheus_client's multiprocess
folder (api/gunicorn_conf.py sets PROMETHEUS_MULTIPROC_DIR) and a scrape sums them over
every process. Open by default, like /healthz; GANFORGE_METRICS_TOKEN makes it ask for that
bearer token.
"""

from __future__ import annotations

import hmac
import time

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.exposition import generate_latest

from api.counters import REQUEST_SECONDS, STORAGE_ERRORS
from api.db_metrics import DatabaseCollector
from api.problems import ApiProblem
from api.state import settings

bp = Blueprint("metrics", __name__)


def install(app: Flask) -> None:
    """Time every request of `app` and serve /metrics. The clock starts before any other
    check, so refused requests are timed too."""
    app.before_request_funcs.setdefault(None, []).insert(0, _start_clock)
    app.after_request(_observe)
    app.register_blueprint(bp)


def _start_clock() -> None:
    g.request_started = time.perf_counter()


def _observe(response: Response) -> Response:
    started = g.get("request_started")
    if started is not None:
        # The route's pattern, not the URL, so job ids do not make a series each.
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        REQUEST_SECONDS.labels(request.method, route, str(response.status_code)).observe(
            time.perf_counter() - started
        )
    return response


@bp.get("/metrics")
def metrics() -> Response:
    _check_token()
    current = settings()
    registry = CollectorRegistry(auto_describe=False)
    if current.prometheus_multiproc_dir:
        prometheus_multiprocess.MultiProcessCollector(
            registry, path=current.prometheus_multiproc_dir
        )
    else:
        registry.register(REQUEST_SECONDS)
        registry.register(STORAGE_ERRORS)
    registry.register(DatabaseCollector(current.database_url))
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def _check_token() -> None:
    expected = settings().metrics_token
    if expected is None:
        return
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), expected):
        raise ApiProblem(
            401, "Unauthorized", "send 'Authorization: Bearer <GANFORGE_METRICS_TOKEN>'"
        )
