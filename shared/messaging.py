"""The Celery app both sides share: the scheduler sends by task name, the worker defines it.

A message holds a job id and an attempt number only; the worker reads the spec from the
database. Redis (or the embedded file-system broker) carries messages, never state.
"""

from __future__ import annotations

import os
from enum import Enum

from celery import Celery
from celery.utils.nodenames import host_format
from kombu import Producer
from kombu.exceptions import OperationalError

from shared.config import Settings

RUN_JOB_TASK = "ganforge.run_job"

# Seconds between the embedded (file-system) broker's looks for new messages.
EMBEDDED_POLL_S = 0.05
# The embedded broker's prefetch multiplier. On a transport without an event loop (the file
# system's) Celery acknowledges a finished task only between its 2 s waits for messages, and
# with a prefetch of one the next message waits for that acknowledgement: every job, however
# short, started on a 2 s beat. The scheduler sends a node only as many jobs as it has free
# devices (the database holds the reservations), so a larger prefetch takes no more.
EMBEDDED_PREFETCH = 4

# Celery node names of ganforge workers start with this; the rest is the ganforge node's name
# and, after the "@", the host's.
WORKER_NAME_PREFIX = "ganforge-"


def make_celery(settings: Settings) -> Celery:
    app = Celery("ganforge", broker=settings.broker_url, set_as_current=False)
    transport_options: dict[str, object] = {"visibility_timeout": settings.visibility_timeout_s}
    if not settings.is_embedded_broker:
        # Bounded like every other network call: a Redis that does not accept within 5 s is
        # down; one that accepts and then says nothing for 30 s (well above the worker's 1 s
        # BRPOP poll) is treated the same, and the connection is retried.
        transport_options.update(socket_connect_timeout=5, socket_timeout=30)
    if settings.is_embedded_broker:
        folder = settings.broker_folder
        (folder / "processed").mkdir(parents=True, exist_ok=True)
        transport_options.update(
            data_folder_in=str(folder),
            data_folder_out=str(folder),
            processed_folder=str(folder / "processed"),
            # Otherwise kombu keeps its exchange table in ./control of whatever folder the
            # process was started from.
            control_folder=str(folder / "control"),
            store_processed=False,
            # The folder is read this often for new messages (kombu's default is 1 s, which
            # was most of a warm sampling job's 2 s on the embedded service); a listing of
            # a folder of a few files, 20 times a second, costs next to nothing.
            polling_interval=EMBEDDED_POLL_S,
        )
    app.conf.update(
        task_default_queue=settings.queue,
        # Training runs for hours: ack only after the task returns, give a lost worker's job
        # back to the broker, and never reserve a second job behind a running one.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=EMBEDDED_PREFETCH if settings.is_embedded_broker else 1,
        # A broker that drops and comes back must not cost a running job: its training never
        # touches the broker, and its claim in the database keeps it from running twice.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        # After a reconnect Celery would cut the prefetch to the devices it thinks are free and
        # restore it only as tasks received after the reconnect end; a pre-outage job's end is
        # never counted, so a node whose jobs all predate a Redis restart took nothing more.
        # The scheduler sends a node only as many jobs as it has free devices (the database
        # holds the reservations), so the full prefetch never takes more than the node runs.
        worker_enable_prefetch_count_reduction=False,
        task_ignore_result=True,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        task_serializer="json",
        accept_content=["json"],
    )
    return app


def send_run_job(
    app: Celery,
    job_id: str,
    attempt: int,
    queue: str,
    task_id: str | None = None,
    producer: Producer | None = None,
) -> str:
    """Send the message that starts `attempt` of `job_id`; returns the broker's task id.
    A caller sending many holds one `producer` (app.producer_or_acquire) for them all."""
    kwargs = {"job_id": job_id, "attempt": attempt}
    # Celery sends to a direct queue through the default exchange, straight onto the queue's
    # own list (Redis) or folder (the embedded broker): no binding is read. Declaring the
    # queue first (its length read and a binding written, two round trips per queue the
    # connection has not seen; a node's worker declares its own when it starts consuming)
    # was most of a 1,000-node pass's sending.
    result = app.send_task(
        RUN_JOB_TASK, kwargs=kwargs, queue=queue, task_id=task_id, producer=producer, declare=[]
    )
    return str(result.id)


def worker_nodename(settings: Settings) -> str:
    """The Celery node name a worker runs under (`%h`: the host name, as Celery expands it)."""
    return f"{WORKER_NAME_PREFIX}{settings.node_name or os.getpid()}@%h"


def broker_reachable(app: Celery, timeout_s: float) -> bool:
    """Whether a connection to the broker opens within `timeout_s` (one try)."""
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout_s)
    except (OperationalError, OSError):
        return False
    return True


class WorkerAnswer(str, Enum):
    ANSWERED = "answered"
    SILENT = "silent"  # the broker is up, the worker did not answer
    BROKER_DOWN = "broker unreachable"


def ping_local_worker(settings: Settings, timeout_s: float) -> WorkerAnswer:
    """Whether this host's ganforge worker answers a Celery ping over the broker (a container
    health check: the worker's main process serves pings while its pool trains)."""
    app = make_celery(settings)
    if not broker_reachable(app, timeout_s):
        return WorkerAnswer.BROKER_DOWN
    try:
        if settings.node_name:
            names = [host_format(worker_nodename(settings))]
            replies = app.control.ping(destination=names, timeout=timeout_s, limit=1)
        else:  # the worker's name holds its pid: ask every worker, keep this host's
            replies = app.control.ping(timeout=timeout_s)
    except (OperationalError, OSError):
        return WorkerAnswer.BROKER_DOWN
    host = host_format("%h")
    for reply in replies:
        for name in reply:
            if name.startswith(WORKER_NAME_PREFIX) and name.endswith(f"@{host}"):
                return WorkerAnswer.ANSWERED
    return WorkerAnswer.SILENT
