"""Run one attempt of a job as its own process group, behind its node agent, and watch it.

The Celery task's process never imports CUDA and never forks training: it opens the
attempt's agent (worker/agent/: the only door between the job's processes and the service),
starts `python -m worker.launcher` in a new session (process group) with an environment of
its own, polls the database for a cancel request, asks the ranks to stop through a stop file
(they agree on the step through a collective), and kills the whole group if they have not
stopped after the grace period, or at once when they break the agent's protocol.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from sqlalchemy import select

from shared.config import Settings
from shared.db import is_unreachable, session_scope
from shared.jobs.reports import HEARTBEAT_INTERVAL_S, heartbeat
from shared.models import Job
from shared.states import JobState
from shared.storage import Storage, StorageError
from worker.agent.server import AttemptAgent, AttemptFolders
from worker.attempt_sandbox import attempt_sandbox
from worker.bundles import BundleCache, BundleFetchError
from worker.channel.link import SOCKET_VARIABLE
from worker.forkserver.client import fork_launcher
from worker.job_code import attempt_needs
from worker.node import work_root
from worker.sandbox import SandboxPlan

log = logging.getLogger(__name__)

# Seconds between looks at the child and at the job's state in the database.
POLL_INTERVAL_S = 0.5
# After SIGTERM to the group, seconds before SIGKILL (Ray waits 3 s).
TERM_GRACE_S = 3.0
# Lines of the launcher's output quoted in the error of a job that died without a word.
ERROR_TAIL_LINES = 20
# Lines of it the worker's own log keeps of an attempt that failed or was lost: the ranks'
# tracebacks, which name the server's files and so never reach the job's owner (their log
# and the job's error say what went wrong and where in their spec or data).
LOGGED_TAIL_LINES = 200


@dataclass(frozen=True)
class RunOutcome:
    # succeeded | cancelled | failed | lost (the machinery failed: requeued), or fenced: the
    # database gave the job to another attempt, so this attempt may record nothing.
    status: str
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


def new_attempt_folders(
    settings: Settings, job_id: str, attempt: int, label: str = ""
) -> AttemptFolders:
    """A fresh folder for one attempt under the node's work root (emptied at worker start)."""
    root = work_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    prefix = f"{job_id[:8]}-{attempt}-{label}"
    folders = AttemptFolders(Path(tempfile.mkdtemp(prefix=prefix, dir=root)))
    folders.create()
    return folders


def supervise(
    settings: Settings,
    store: Storage,
    job_id: str,
    attempt: int,
    env: dict[str, str] | None = None,
    launch_args: list[str] | None = None,
    bundles: BundleCache | None = None,
) -> RunOutcome:
    """Run the attempt's launcher to its end; `env` adds to its environment (device pinning),
    `launch_args` to its command line (this node's place in a gang); `bundles`: the node's
    cache of code bundles (one made for this call when not given)."""
    bundles = bundles or BundleCache.for_node(settings, store)
    folders = new_attempt_folders(settings, job_id, attempt)
    command = [
        sys.executable,
        "-m",
        "worker.launcher",
        "--job-id",
        job_id,
        "--attempt",
        str(attempt),
        "--parent-pid",
        str(os.getpid()),
        *(launch_args or []),
    ]
    agent = AttemptAgent(settings, store, job_id, attempt, folders)
    try:
        with contextlib.ExitStack() as held, agent, folders.output.open("wb") as output:
            needs = attempt_needs(settings, job_id)
            codes = needs.bundles
            try:  # kept from the cache's eviction while the job's processes import from them
                agent.bundles = {c: str(held.enter_context(bundles.use(c))) for c in codes}
            except (BundleFetchError, StorageError) as error:  # the store away: lost, retried
                away = isinstance(error, StorageError) or isinstance(error.__cause__, StorageError)
                return RunOutcome("lost" if away else "failed", f"spec.model.code: {error}")
            agent.runs_user_code = bool(codes)
            channel = {**(env or {}), SOCKET_VARIABLE: str(agent.socket_path)}
            readable = [folders.inputs, *map(Path, agent.bundles.values())]
            plan, environment = attempt_sandbox(
                settings,
                folders.job,
                channel,
                readable=readable,
                address_space_bytes=needs.address_space_bytes,
            )
            process = start_launcher(settings, command, environment, folders.job, plan, output)
            agent.admit(process.pid)  # it leads its own session: its ranks are in it
            ending = _watch(settings, job_id, attempt, process, agent)
        if ending == "fenced":
            return RunOutcome("fenced", "the job moved on to another attempt")
        tail = folders.output.read_text(errors="replace").splitlines()
        outcome = attempt_outcome(
            process.wait(),  # reaped already by _watch's kill_group: its code, at once
            killed=ending == "killed",
            violation=agent.violation,
            result=agent.result,
            failure=agent.first_failure(),
            output=tail[-ERROR_TAIL_LINES:],
        )
        if outcome.status in ("failed", "lost"):
            log.warning(
                "job %s attempt %d %s: %s; the end of its processes' output:\n%s",
                job_id,
                attempt,
                outcome.status,
                outcome.error,
                "\n".join(tail[-LOGGED_TAIL_LINES:]),
            )
        return outcome
    finally:
        shutil.rmtree(folders.root, ignore_errors=True)


class WatchedProcess(Protocol):
    """An attempt's launcher as `_watch` and `kill_group` see it: a `subprocess.Popen`, or
    one the node's fork server forked (worker/forkserver/client.py)."""

    pid: int
    returncode: int | None

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


def start_launcher(
    settings: Settings,
    command: list[str],
    environment: dict[str, str],
    cwd: Path,
    plan: SandboxPlan,
    output: BinaryIO,
) -> WatchedProcess:
    """The attempt's launcher, leading its own session inside `plan`: forked by the node's
    fork server (torch already imported) when one takes it, else started cold through the
    sandbox shim."""
    launcher_args = command[command.index("worker.launcher") + 1 :]
    forked = fork_launcher(settings, launcher_args, environment, cwd, plan, output)
    if forked is not None:
        log.info("launcher %d forked by the fork server", forked.pid)
        return forked
    return subprocess.Popen(
        plan.command(command),
        start_new_session=True,
        stdout=output,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env=environment,
    )


def _watch(
    settings: Settings,
    job_id: str,
    attempt: int,
    process: WatchedProcess,
    agent: AttemptAgent,
) -> str:
    """Wait for the launcher; on a cancel or preemption request, stop it. Returns how the
    wait ended: "exited", "killed" (it ignored the stop past the grace period, or broke the
    agent's protocol: `agent.violation` says which) or "fenced" (the job is no longer this
    attempt's, so its processes were killed at once)."""
    stop_asked_at: float | None = None
    last_heartbeat = time.monotonic()
    try:
        while process.poll() is None:
            time.sleep(POLL_INTERVAL_S)
            if agent.violation is not None:
                log.warning("job %s attempt %s: cutting its processes off", job_id, attempt)
                kill_group(process)
                return "exited"
            status, last_heartbeat = beat_and_look(settings, job_id, attempt, last_heartbeat)
            if status == "fenced":
                log.warning("job %s attempt %s was given away; killing it", job_id, attempt)
                kill_group(process)
                return "fenced"
            if stop_asked_at is None and status == "stop":
                log.info("job %s: asked to stop (cancel or preemption); telling ranks", job_id)
                agent.folders.stop.touch()
                stop_asked_at = time.monotonic()
            if (
                stop_asked_at is not None
                and time.monotonic() - stop_asked_at > settings.cancel_grace_s
            ):
                log.warning(
                    "job %s did not stop within %.0f s; killing it", job_id, settings.cancel_grace_s
                )
                kill_group(process)
                return "killed"
        return "exited"
    finally:
        kill_group(process)  # leave no orphan rank or data-loader process behind


def beat_and_look(
    settings: Settings, job_id: str, attempt: int, last_heartbeat: float
) -> tuple[str, float]:
    """One turn of a watch loop (the launcher's or the warm sampler's): heartbeat the attempt
    when one is due, then read `job_status`. While the database is away the status is
    "unknown": the work goes on and the caller looks again at its next turn. Returns the
    status and the time of the last heartbeat."""
    try:
        if time.monotonic() - last_heartbeat > HEARTBEAT_INTERVAL_S:
            with session_scope(settings.database_url) as session:
                heartbeat(session, job_id, attempt)
            last_heartbeat = time.monotonic()
        return job_status(settings, job_id, attempt), last_heartbeat
    except Exception as error:
        if not is_unreachable(error):
            raise
        return "unknown", last_heartbeat


def job_status(settings: Settings, job_id: str, attempt: int) -> str:
    """What the attempt should do now: "stop" (a cancel or a preemption was asked), "fenced"
    (the job is not this attempt's to run any more) or "run"."""
    with session_scope(settings.database_url) as session:
        state, current, preempt_reason = session.execute(
            select(Job.state, Job.attempt, Job.preempt_reason).where(Job.id == job_id)
        ).one()
    if current != attempt or state not in (JobState.RUNNING.value, JobState.CANCELLING.value):
        return "fenced"
    stopping = state == JobState.CANCELLING.value or preempt_reason is not None
    return "stop" if stopping else "run"


def kill_group(process: WatchedProcess) -> None:
    """SIGTERM the launcher's whole process group, then SIGKILL what is left."""
    try:
        pgid = os.getpgid(process.pid)
    except ProcessLookupError:
        pgid = process.pid  # the leader is gone; its group may live on under the same id
    for sig, wait_s in ((signal.SIGTERM, TERM_GRACE_S), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and _group_alive(pgid):
            time.sleep(0.05)
    if process.poll() is None:
        process.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def attempt_outcome(
    returncode: int,
    *,
    killed: bool,
    violation: str | None,
    result: tuple[str, str] | None,
    failure: tuple[str, bool] | None,
    output: list[str],
) -> RunOutcome:
    """How the attempt ended, from what its agent heard and how its processes exited: the
    ranks' or the launcher's result; a rank's own failure (lost when any rank saw the
    machinery fail); else the exit, quoting the end of the output."""
    if killed:
        return RunOutcome("cancelled", "killed after the cancel grace period")
    if violation is not None:
        return RunOutcome(
            "failed", f"the job's processes were cut off by the node agent: {violation}"
        )
    if result is not None and result[0] != "rank_failed":
        return RunOutcome(*result)
    if failure is not None:
        message, lost = failure
        return RunOutcome("lost" if lost else "failed", message)
    if result is not None:
        return RunOutcome("failed", result[1])
    if returncode == 0:
        return RunOutcome("failed", "the job's processes exited without reporting a result")
    # Killed by a signal before saying a word (the OOM killer, kill -9): the machinery's
    # fault, requeued; any other silent exit fails the job.
    status = "lost" if returncode < 0 else "failed"
    return RunOutcome(
        status, f"the job's processes exited with code {returncode}: " + "\n".join(output)
    )
