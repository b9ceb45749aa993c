"""The supervisor's side of the fork server: ask it for an attempt's launcher and watch that.

`fork_launcher` returns None when no fork server took the attempt (switched off, not running,
still importing past the bound, or it hung up before forking): the supervisor then starts the
launcher cold, and nothing was started for it here. Once the server has said "pid", the
attempt is this launcher's, whatever happens next.
"""

from __future__ import annotations

import contextlib
import logging
import select
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from shared.config import Settings
from worker.forkserver.protocol import SOCKET_NAME, ProtocolError, receive, send
from worker.sandbox import SandboxPlan
from worker.warm.sockets import socket_folder

log = logging.getLogger(__name__)

# A fork server (re)starting imports torch before it answers: a few seconds, tens on a busy
# node. Past this, the attempt goes cold (which spends as long importing torch itself).
START_TIMEOUT_S = 20.0
# What a launcher whose server died under it counts as: killed, as by a signal.
LOST_RETURNCODE = -signal.SIGKILL
WAIT_INTERVAL_S = 0.05


def socket_path(settings: Settings) -> Path:
    """Where this node's fork server listens: beside the warm samplers' sockets, in the
    worker's own 0700 folder, which no job process may reach."""
    return socket_folder(settings) / SOCKET_NAME


class ForkedLauncher:
    """A launcher the fork server forked, as its supervisor sees it: the part of
    `subprocess.Popen` that `worker.supervisor` uses (`pid`, `poll`, `wait`, `returncode`).
    Its exit status comes from the server, its parent."""

    def __init__(self, connection: socket.socket, pid: int) -> None:
        self.connection = connection
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            ready, _, _ = select.select([self.connection], [], [], 0)
            if ready:
                self._read_end()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"launcher {self.pid}", timeout or 0.0)
            time.sleep(WAIT_INTERVAL_S)
        assert self.returncode is not None
        return self.returncode

    def _read_end(self) -> None:
        try:
            message, _ = receive(self.connection)
        except (OSError, ProtocolError):
            message = None
        if message is not None and isinstance(message.get("exit"), int):
            self.returncode = int(message["exit"])
        else:  # the server died (and its launchers with it) or spoke out of turn
            self.returncode = LOST_RETURNCODE
        self.connection.close()


def fork_launcher(
    settings: Settings,
    argv: Sequence[str],
    environment: Mapping[str, str],
    cwd: Path,
    plan: SandboxPlan,
    output: BinaryIO,
) -> ForkedLauncher | None:
    """Have the node's fork server fork the launcher `argv` (its arguments after
    `python -m worker.launcher`) in `cwd` with `environment`, inside `plan`, writing to
    `output`; None when it did not."""
    path = socket_path(settings)
    if not settings.fork_server or not path.exists():
        return None
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    connection.settimeout(START_TIMEOUT_S)
    request = {
        "argv": list(argv),
        "env": dict(environment),
        "cwd": str(cwd),
        "plan": plan.to_json(),
    }
    try:
        connection.connect(str(path))
        send(connection, request, [output.fileno()])
        reply, _ = receive(connection)
    except (OSError, ProtocolError) as error:  # TimeoutError is an OSError
        log.warning("fork server did not take the attempt (%s); starting it cold", error)
        connection.close()
        return None
    if reply is None or not isinstance(reply.get("pid"), int):
        with contextlib.suppress(OSError):
            connection.close()
        log.warning("fork server hung up before forking; starting the attempt cold")
        return None
    connection.settimeout(None)
    return ForkedLauncher(connection, int(reply["pid"]))
