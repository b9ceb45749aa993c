"""Prometheus metrics read from the database at scrape time.

The job, node and reservation tables are the truth every API process shares, so a collector
that reads them when Prometheus scrapes is right whichever gunicorn process answers, with no
shared counters to keep: jobs by state, each attempt's queue wait and each finished job's
run time (as histograms over every row so far), devices busy and free on each node, and the
training speed of each running job. A database that cannot be reached is
`ganforge_database_up 0` and nothing else from here.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.db import is_unreachable, session_scope
from shared.models import Job, JobEvent, Node, User, as_utc
from shared.pool.reservations import devices_in_use
from shared.states import TERMINAL, JobState

log = logging.getLogger(__name__)

# Seconds from queued to running: a free pool starts a job within a second or two, a busy
# one makes it wait minutes to days.
QUEUE_WAIT_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0)
# Seconds from a job's last start to its end: sampling jobs take seconds, training runs
# minutes to days.
DURATION_BUCKETS = (10.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0, 48 * 3600.0)
# Nodes whose devices count as the pool's (a stopped or dead node offers nothing).
COUNTED_NODE_STATES = ("up", "draining")


class DatabaseCollector(Collector):
    """The pool's metrics from one database, read at each scrape."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def describe(self) -> Iterable[Metric]:
        return []  # nothing to read at registration: every scrape asks the database

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("ganforge_database_up", "1 if the job database answered")
        try:
            with session_scope(self.database_url) as session:
                families = list(_families(session))
        except Exception as error:
            if not is_unreachable(error):
                raise
            log.warning("metrics: database unreachable: %s", error)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families


def _families(session: Session) -> Iterator[Metric]:
    yield _jobs_by_state(session)
    yield _queue_waits(session)
    yield _durations(session)
    yield _node_devices(session)
    yield _images_per_second(session)


def _jobs_by_state(session: Session) -> Metric:
    family = GaugeMetricFamily("ganforge_jobs", "Jobs in each state", labels=["state"])
    counts = dict(session.execute(select(Job.state, func.count()).group_by(Job.state)).all())
    for state in JobState:
        family.add_metric([state.value], counts.get(state.value, 0))
    return family


def _queue_waits(session: Session) -> Metric:
    """Each attempt's wait: from a `queued` event (submission or requeue) to the next
    `running` event of that job, by job kind."""
    rows = session.execute(
        select(JobEvent.job_id, JobEvent.to_state, JobEvent.created_at, Job.kind)
        .join(Job, Job.id == JobEvent.job_id)
        .where(JobEvent.to_state.in_([JobState.QUEUED.value, JobState.RUNNING.value]))
        .order_by(JobEvent.job_id, JobEvent.id)
    )
    waits: dict[str, list[float]] = {}
    queued_at: dict[str, datetime] = {}
    for job_id, state, at, kind in rows:
        if state == JobState.QUEUED.value:
            queued_at[job_id] = as_utc(at)
        elif job_id in queued_at:
            seconds = (as_utc(at) - queued_at.pop(job_id)).total_seconds()
            waits.setdefault(kind, []).append(max(0.0, seconds))
    family = HistogramMetricFamily(
        "ganforge_job_queue_wait_seconds",
        "Seconds from queued (submitted or requeued) to running, per attempt",
        labels=["kind"],
    )
    for kind, values in sorted(waits.items()):
        buckets, total = _buckets(values, QUEUE_WAIT_BUCKETS)
        family.add_metric([kind], buckets, total)
    return family


def _durations(session: Session) -> Metric:
    """Finished jobs that ran: their last attempt's run, from its start to the final state."""
    rows = session.execute(
        select(Job.kind, Job.state, Job.started_at, Job.finished_at).where(
            Job.state.in_([s.value for s in TERMINAL]),
            Job.started_at.is_not(None),
            Job.finished_at.is_not(None),
        )
    )
    durations: dict[tuple[str, str], list[float]] = {}
    for kind, state, started, finished in rows:
        if started is None or finished is None:
            continue
        seconds = (as_utc(finished) - as_utc(started)).total_seconds()
        durations.setdefault((kind, state), []).append(max(0.0, seconds))
    family = HistogramMetricFamily(
        "ganforge_job_duration_seconds",
        "Seconds finished jobs ran (their last attempt), by kind and final state",
        labels=["kind", "state"],
    )
    for (kind, state), values in sorted(durations.items()):
        buckets, total = _buckets(values, DURATION_BUCKETS)
        family.add_metric([kind, state], buckets, total)
    return family


def _node_devices(session: Session) -> Metric:
    family = GaugeMetricFamily(
        "ganforge_node_devices",
        "Devices (GPUs or CPU slots) of each up or draining node, busy (reserved) or free",
        labels=["node", "status"],
    )
    used = devices_in_use(session)
    nodes = session.execute(
        select(Node.name, Node.devices)
        .where(Node.state.in_(COUNTED_NODE_STATES))
        .order_by(Node.name)
    )
    for name, devices in nodes:
        indexes = {device["index"] for device in devices}
        busy = len(indexes & used.get(name, set()))
        family.add_metric([name, "busy"], busy)
        family.add_metric([name, "free"], len(indexes) - busy)
    return family


def _images_per_second(session: Session) -> Metric:
    family = GaugeMetricFamily(
        "ganforge_job_images_per_second",
        "Training speed of each running job, from its latest progress report",
        labels=["job_id", "owner", "kind"],
    )
    rows = session.execute(
        select(Job.id, User.name, Job.kind, Job.progress)
        .join(User, User.id == Job.owner_id)
        .where(Job.state == JobState.RUNNING.value)
        .order_by(Job.id)
    )
    for job_id, owner, kind, progress in rows:
        speed = (progress or {}).get("images_per_second")
        if isinstance(speed, (int, float)):
            family.add_metric([job_id, owner, kind], float(speed))
    return family


def _buckets(
    values: Sequence[float], bounds: Sequence[float]
) -> tuple[list[tuple[str, float]], float]:
    """Cumulative bucket counts (with +Inf) and the sum, as Prometheus histograms have them."""
    ordered = sorted(values)
    buckets = [(floatToGoString(bound), float(bisect_right(ordered, bound))) for bound in bounds]
    buckets.append(("+Inf", float(len(ordered))))
    return buckets, float(sum(ordered))
