"""What an API process counts itself: request latency by route, and storage errors.

Created unregistered: /metrics builds a registry per scrape (several apps live in one test
process, and under gunicorn prometheus_client's multiprocess collector reads these from its
folder instead, summed over every process).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUEST_SECONDS = Histogram(
    "ganforge_api_request_duration_seconds",
    "Seconds the API took to answer, by method, route and status (a stream: until it began)",
    ["method", "route", "status"],
    registry=None,
)
STORAGE_ERRORS = Counter(
    "ganforge_api_storage_errors",
    "Storage calls of the API that failed (the store unreachable or refusing)",
    ["where"],
    registry=None,
)


def count_storage_error(where: str) -> None:
    STORAGE_ERRORS.labels(where=where).inc()
