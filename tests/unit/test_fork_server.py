"""The node's fork server (worker/forkserver/): attempts forked from a process that imported
torch once, with the cold path's guarantees: the attempt trains to its end behind its agent,
a dead server is replaced (an attempt waits in the socket's backlog meanwhile), and a
launcher whose supervisor hangs up is killed with its group."""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from shared.config import Settings
from shared.storage import open_storage
from tests.unit.job_factories import running_job
from worker.channel.link import SOCKET_VARIABLE
from worker.forkserver.client import fork_launcher, socket_path
from worker.forkserver.keeper import ForkServerKeeper
from worker.sandbox import SandboxPlan
from worker.sandbox.environment import job_environment
from worker.supervisor import supervise

pytestmark = pytest.mark.processes  # starts the server, launchers and ranks

READY_TIMEOUT_S = 120.0


def _forked(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "forked by the fork server" in r.getMessage()]


def test_attempts_are_forked_and_a_dead_server_is_replaced(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="worker")
    keeper = ForkServerKeeper(settings)
    keeper.start()
    try:
        store = open_storage(settings)
        first = supervise(settings, store, running_job(settings), 1)
        assert first.ok, first.error
        assert len(_forked(caplog)) == 1
        assert keeper.process is not None
        os.killpg(keeper.process.pid, signal.SIGKILL)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while keeper.restarts == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert keeper.restarts == 1
        second = supervise(settings, store, running_job(settings, "bob"), 1)
        assert second.ok, second.error
        assert len(_forked(caplog)) == 2  # waited for the new server instead of going cold
    finally:
        keeper.stop()
    assert not socket_path(settings).exists()


def test_a_launcher_whose_supervisor_hangs_up_is_killed(settings: Settings, tmp_path: Path) -> None:
    keeper = ForkServerKeeper(settings)
    keeper.start()
    try:
        folder = tmp_path / "attempt"
        folder.mkdir()
        # A launcher asking an agent that never answers: it waits until it is killed.
        silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        silent.bind(str(folder / "agent.sock"))
        silent.listen(1)
        environment = job_environment({SOCKET_VARIABLE: str(folder / "agent.sock")}, folder)
        with silent, (folder / "output").open("wb") as output:
            launcher = fork_launcher(
                settings, ["--job-id", "x"], environment, folder, SandboxPlan(confine=False), output
            )
            assert launcher is not None
            time.sleep(0.5)
            assert launcher.poll() is None  # still waiting for its agent
            launcher.connection.shutdown(socket.SHUT_RDWR)
            launcher.connection.close()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _alive(launcher.pid):
                time.sleep(0.05)
            assert not _alive(launcher.pid)
    finally:
        keeper.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
