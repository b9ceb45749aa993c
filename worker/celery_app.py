"""The Celery application the `celery worker` command loads: `celery -A worker.celery_app`.

The worker consumes only its node's own queue, with one pool thread per device: the scheduler
sends a job here only once it has reserved devices on this node, so the pool never waits.

Threads, not Celery's prefork processes: a task only supervises its job's own process group
(worker/supervisor.py), so a thread is all it needs, and a thread pool has no per-process pipes
to misroute. After a broker reconnect the prefork pool forgets which of its processes are busy
(Celery clears that record with its outbound queue) and may hand a new job to a process still
running a pre-outage job, where it waits for hours while a device stands free.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import setup_logging, worker_ready, worker_shutdown, worker_shutting_down

from shared.config import Settings
from shared.hardening import harden_service_process
from shared.logs import configure_logging
from shared.messaging import make_celery
from worker.forkserver.keeper import ForkServerKeeper
from worker.malloc_settings import return_freed_memory
from worker.node import NodeAgent, detect_devices
from worker.warm.samplers import WarmSamplers

# The worker holds the service's credentials; its jobs' processes may run as the same uid:
# they must not read its /proc/<pid>/environ or memory, nor trace it.
harden_service_process()
# Memory the agents' short-lived threads free goes back to the system (worker/malloc_settings.py).
return_freed_memory()
settings = Settings.from_env()
agent = NodeAgent(settings, detect_devices(settings))
samplers = WarmSamplers(settings, agent.devices)
fork_server = ForkServerKeeper(settings)
app = make_celery(settings)
app.conf.update(
    include=["worker.tasks"],
    worker_pool="threads",
    worker_concurrency=len(agent.devices),
    task_default_queue=agent.queue,
)


if settings.log_format == "json":

    @setup_logging.connect
    def _json_logs(loglevel: int | str | None = None, **_: Any) -> None:
        """GANFORGE_LOG_FORMAT=json: Celery leaves the root logger to us (a receiver of
        setup_logging replaces its own set-up), and every record is one JSON line."""
        level = logging.getLevelName(loglevel) if isinstance(loglevel, str) else loglevel
        configure_logging("json", level or logging.INFO)


@worker_ready.connect
def _announce_node(**_: Any) -> None:
    samplers.start()  # they import torch while the node registers and its first job comes
    fork_server.start()  # and so does the fork server
    agent.start()


@worker_shutting_down.connect
def _give_jobs_back(**_: Any) -> None:
    """SIGTERM (a warm shutdown): the running jobs checkpoint, end `preempted` and resume on
    another node; Celery waits for their tasks to return before it exits."""
    agent.give_jobs_back()


@worker_shutdown.connect
def _retire_node(**_: Any) -> None:
    agent.stop()
    samplers.stop()
    fork_server.stop()
