"""The bare tool bench/queue.py measures ganforge's queue against: a plain Celery app on the
same Redis, with ganforge's worker settings (acks late, prefetch 1, JSON, one prefork process),
and a trivial task that records when it started.

    BENCH_RAW_BROKER_URL=redis://... BENCH_RAW_QUEUE=q celery -A bench.raw_celery worker -c 1
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

BROKER_URL = os.environ.get("BENCH_RAW_BROKER_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("BENCH_RAW_QUEUE", "bench-raw")

app = Celery("bench_raw", broker=BROKER_URL, set_as_current=False)
app.conf.update(
    task_default_queue=QUEUE,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
)


def started_key(token: str) -> str:
    """The Redis list the task pushes its start time to, for the sender to BLPOP."""
    return f"{QUEUE}:started:{token}"


@app.task(name="bench.raw.started")
def started(token: str) -> None:
    """Record the moment the worker started this task (time.time(), the sender's clock)."""
    now = time.time()
    redis.Redis.from_url(BROKER_URL).lpush(started_key(token), repr(now))
