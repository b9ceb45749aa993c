"""How the API, the scheduler and the workers write their own log records.

`GANFORGE_LOG_FORMAT=text` (the default) is a line for people; `json` is one object per line
for a log collector: `time` (UTC, ISO 8601), `level`, `logger`, `message`, and `job_id` and
`attempt` where the record is about one job attempt (`job_context` in the worker's task, the
job id of the URL in the API, or `extra={"job_id": ...}` at the call), plus `exception`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# The record attributes copied into a JSON line when a record has them.
JOB_FIELDS = ("job_id", "attempt")

JobContext = tuple[str, int | None]
_job: ContextVar[JobContext | None] = ContextVar("ganforge_job", default=None)
# Other places that know the job a record is about (the API: the job id in the URL).
_sources: list[Callable[[], JobContext | None]] = []


def add_context_source(source: Callable[[], JobContext | None]) -> None:
    """Ask `source` for the job of records logged outside any `job_context`."""
    if source not in _sources:
        _sources.append(source)


@contextmanager
def job_context(job_id: str, attempt: int | None = None) -> Iterator[None]:
    """Records logged inside carry this job id and attempt."""
    token = _job.set((job_id, attempt))
    try:
        yield
    finally:
        _job.reset(token)


class JobContextFilter(logging.Filter):
    """Sets `job_id` and `attempt` on a record from `job_context`, unless the call gave them."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _job.get()
        for source in _sources:
            if current is not None:
                break
            current = source()
        if current is not None:
            if getattr(record, "job_id", None) is None:
                record.job_id = current[0]
            if getattr(record, "attempt", None) is None and current[1] is not None:
                record.attempt = current[1]
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, tz=timezone.utc)
        entry: dict[str, object] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in JOB_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def make_handler(log_format: str) -> logging.Handler:
    """A stderr handler in `log_format` (text or json) that adds the job context."""
    handler = logging.StreamHandler()
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    handler.addFilter(JobContextFilter())
    handler.ganforge = True  # type: ignore[attr-defined]
    return handler


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    """Send the root logger's records to stderr in `log_format`. Replaces a handler this
    function installed before; leaves a root logger that someone else set up (a test runner)
    alone, as logging.basicConfig does."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "ganforge", False)]
    if len(ours) != len(root.handlers):
        return
    for handler in ours:
        root.removeHandler(handler)
    root.addHandler(make_handler(log_format))
    root.setLevel(level)
