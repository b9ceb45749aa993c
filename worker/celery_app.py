"""The Celery application the `celery worker` command loads: `celery -A worker.celery_app`."""

from __future__ import annotations

from shared.config import Settings
from shared.messaging import make_celery

settings = Settings.from_env()
app = make_celery(settings)
app.conf.update(include=["worker.tasks"], worker_concurrency=1)
