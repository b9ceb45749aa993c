"""Prometheus metrics read from the database at scrape time.

The job, node and reservation tables are the truth every API process shares, so a collector
that reads them when Prometheus scrapes is right whichever gunicorn process answers, with no
shared counters to keep in a process: jobs by state (the final ones counted as jobs reach
them), each attempt's queue wait and each finished job's run time (histograms the state
machine counts into `job_timing_buckets` as it moves a job, shared/job_timings.py: a scrape
reads a few dozen rows, not the history), devices busy and free on each node, and the
training speed of each running job. A database that cannot be reached is
`ganforge_database_up 0` and nothing else from here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared import job_timings
from shared.db import is_unreachable, session_scope
from shared.job_timings import DURATION, ENDED, QUEUE_WAIT
from shared.models import Job, Node, User
from shared.pool.reservations import devices_in_use
from shared.states import TERMINAL, JobState

log = logging.getLogger(__name__)

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
    # Live states: a range each of ix_jobs_state_created, as long as the live queue. Final
    # states: counted as jobs reached them (shared/job_timings.py), never a million-row count.
    live = [state.value for state in JobState if state not in TERMINAL]
    counts = dict(
        session.execute(
            select(Job.state, func.count()).where(Job.state.in_(live)).group_by(Job.state)
        ).all()
    )
    for (_, state), buckets in job_timings.histograms(session, ENDED).items():
        counts[state] = counts.get(state, 0) + sum(n for n, _ in buckets)
    for state in JobState:
        family.add_metric([state.value], counts.get(state.value, 0))
    return family


def _queue_waits(session: Session) -> Metric:
    family = HistogramMetricFamily(
        "ganforge_job_queue_wait_seconds",
        "Seconds from queued (submitted or requeued) to running, per attempt",
        labels=["kind"],
    )
    for (kind, _), counts in sorted(job_timings.histograms(session, QUEUE_WAIT).items()):
        family.add_metric([kind], *_cumulative(counts, job_timings.QUEUE_WAIT_BUCKETS))
    return family


def _durations(session: Session) -> Metric:
    family = HistogramMetricFamily(
        "ganforge_job_duration_seconds",
        "Seconds finished jobs ran (their last attempt), by kind and final state",
        labels=["kind", "state"],
    )
    for (kind, state), counts in sorted(job_timings.histograms(session, DURATION).items()):
        family.add_metric([kind, state], *_cumulative(counts, job_timings.DURATION_BUCKETS))
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


def _cumulative(
    counts: Sequence[tuple[int, float]], bounds: Sequence[float]
) -> tuple[list[tuple[str, float]], float]:
    """Per-bucket (count, sum) rows as Prometheus has a histogram: cumulative counts by
    upper bound (with +Inf) and the sum."""
    labels = [floatToGoString(bound) for bound in bounds] + ["+Inf"]
    running = accumulate(float(n) for n, _ in counts)
    return list(zip(labels, running, strict=True)), float(sum(total for _, total in counts))
