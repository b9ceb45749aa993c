"""The Celery task's side of the warm sampler: hand over a claimed sampling job and watch it.

The watch is the supervisor's (worker/supervisor.py): the job's heartbeat, a cancel or
preemption request passed on through the attempt's stop file, the sampler killed (and so
replaced by the worker) past the cancel grace period or at once when the attempt was given
away. A sampler that dies while it runs the job loses the attempt, which the scheduler
retries. None from `run_warm` means no sampler took the job: the task runs it cold.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import time
from pathlib import Path

from sqlalchemy import select

from shared.config import Settings
from shared.db import session_scope
from shared.models import Job
from shared.storage import Storage
from worker.agent.server import AttemptAgent
from worker.job_code import code_bundles_of
from worker.supervisor import POLL_INTERVAL_S, RunOutcome, beat_and_look, new_attempt_folders
from worker.warm.protocol import Lines, send
from worker.warm.sockets import socket_path

log = logging.getLogger(__name__)

# A sampler starting with its worker imports torch first (seconds on a busy node): a job that
# arrives meanwhile waits this long for it before it takes the cold path.
CONNECT_TIMEOUT_S = 60.0
CONNECT_RETRY_S = 0.1
# A live sampler answers "accepted" at once; one that does not within this long is stuck.
ACCEPT_TIMEOUT_S = 10.0


def takes_warm(settings: Settings, job_id: str) -> bool:
    """Whether this job is one for the warm sampler: a sampling job, with it switched on, of
    a built-in model. A custom model's runs cold: a long-lived process that imported one
    researcher's code must never serve another's job."""
    if not settings.warm_sampler:
        return False
    with session_scope(settings.database_url) as session:
        if session.scalar(select(Job.kind).where(Job.id == job_id)) != "sample":
            return False
    return not code_bundles_of(settings, job_id)


def run_warm(
    settings: Settings, store: Storage, job_id: str, attempt: int, device_index: int
) -> RunOutcome | None:
    """Run the attempt on the device's warm sampler, behind an agent of its own as a cold
    attempt's; None if no sampler accepted it."""
    connection = _connect(socket_path(settings, device_index))
    if connection is None:
        log.warning("job %s: no warm sampler for device %d; running it cold", job_id, device_index)
        return None
    folders = new_attempt_folders(settings, job_id, attempt, "warm-")
    try:
        with connection, AttemptAgent(settings, store, job_id, attempt, folders) as agent:
            lines = Lines(connection)
            accepted = _hand_over(connection, lines, job_id, attempt, agent.socket_path)
            if accepted is None:
                return None
            agent.admit(os.getsid(accepted))  # the sampler leads its own session
            outcome = _watch(settings, job_id, attempt, lines, accepted, agent)
            log.info(
                "job %s attempt %s ran on the warm sampler of device %d: %s",
                job_id,
                attempt,
                device_index,
                outcome.status,
            )
            return outcome
    finally:
        shutil.rmtree(folders.root, ignore_errors=True)


def _connect(path: Path) -> socket.socket | None:
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            connection.connect(str(path))
            return connection
        except OSError:  # not listening yet (starting, restarting)
            connection.close()
            if time.monotonic() > deadline:
                return None
            time.sleep(CONNECT_RETRY_S)


def _hand_over(
    connection: socket.socket, lines: Lines, job_id: str, attempt: int, channel: Path
) -> int | None:
    """Send the job (its agent's socket: all the sampler learns of it comes through there);
    the sampler's pid once it accepted it, None if it never did."""
    connection.settimeout(ACCEPT_TIMEOUT_S)
    try:
        send(connection, {"job_id": job_id, "attempt": attempt, "channel": str(channel)})
        answer = lines.read()
    except OSError as error:  # TimeoutError included: a stuck sampler runs nothing of ours
        log.warning("job %s: the warm sampler did not accept it (%s)", job_id, error)
        return None
    return int(answer["pid"]) if answer and answer.get("accepted") else None


def _watch(
    settings: Settings, job_id: str, attempt: int, lines: Lines, pid: int, agent: AttemptAgent
) -> RunOutcome:
    """Wait for the sampler's result while keeping the attempt's promises (see the module)."""
    lines.connection.settimeout(POLL_INTERVAL_S)
    stop_asked_at: float | None = None
    last_heartbeat = time.monotonic()
    while True:
        try:
            result = lines.read()
        except TimeoutError:
            result = {"status": "running"}
        except OSError as error:
            result = None
            log.warning("job %s: lost the warm sampler's connection (%s)", job_id, error)
        if result is None:
            return RunOutcome("lost", "the warm sampler died while it ran the job")
        if agent.violation is not None:
            log.warning("job %s broke the agent protocol; killing its sampler", job_id)
            kill_sampler(pid)
            return RunOutcome("failed", f"cut off by the node agent: {agent.violation}")
        if result["status"] != "running":
            return RunOutcome(result["status"], result.get("error", ""))
        status, last_heartbeat = beat_and_look(settings, job_id, attempt, last_heartbeat)
        if status == "fenced":
            log.warning("job %s attempt %s was given away; killing its sampler", job_id, attempt)
            kill_sampler(pid)
            return RunOutcome("fenced", "the job moved on to another attempt")
        if stop_asked_at is None and status == "stop":
            agent.folders.stop.touch()
            stop_asked_at = time.monotonic()
        if stop_asked_at is not None and time.monotonic() - stop_asked_at > settings.cancel_grace_s:
            log.warning("job %s did not stop within the grace period; killing its sampler", job_id)
            kill_sampler(pid)
            return RunOutcome("cancelled", "killed after the cancel grace period")


def kill_sampler(pid: int) -> None:
    """SIGKILL the sampler's process group; the worker starts a fresh one."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
