"""The worker main process's side of the fork server: make its socket, start it, start it
again when it dies, stop it with the worker.

The listening socket belongs to the worker, not to the server: it is bound once, in the
worker's own 0700 folder under $GANFORGE_HOME/run (which no job process may reach), and each
server process inherits it. A supervisor that connects while a replacement still imports
torch waits in the socket's backlog instead of finding nobody there.

The server is started through the sandbox shim like an attempt's launcher, with a plan that
grants what any attempt may be granted: the node's work root, where every attempt's folder
lies, and the code bundle cache. Each forked launcher narrows that to its own attempt's plan.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import replace

from shared.config import Settings
from worker.attempt_sandbox import account_for, protected_folders
from worker.bundles import node_cache_folder
from worker.forkserver.client import socket_path
from worker.node import node_name, work_root
from worker.sandbox import SandboxPlan
from worker.sandbox.account import prepare_work_folder
from worker.sandbox.environment import job_environment
from worker.warm.samplers import signal_group
from worker.warm.sockets import SOCKET_PATH_MAX

log = logging.getLogger(__name__)

# Seconds between looks at the server: a dead one is replaced within about this long.
WATCH_INTERVAL_S = 0.5
# A server asked to stop (SIGTERM) gets this long before SIGKILL; it holds nothing to save.
STOP_GRACE_S = 5.0
# torch's import starts a thread of its OpenMP runtime unless it is told to use one, and the
# server must have none when it forks. Its launchers' ranks set their own count
# (torch.set_num_threads), which does not depend on this.
SINGLE_THREADED = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# Supervisors that may wait at once for a server still importing torch.
BACKLOG = 64


class ForkServerKeeper:
    """Keeps one fork server alive for the node until `stop()`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.process: subprocess.Popen[bytes] | None = None
        self.listener: socket.socket | None = None
        self.restarts = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        if not self.settings.fork_server:
            return
        path = socket_path(self.settings)
        if len(os.fsencode(path)) > SOCKET_PATH_MAX:
            log.warning(
                "no fork server: its socket (%s) would be longer than %d bytes; set a shorter "
                "GANFORGE_HOME (attempts start cold meanwhile)",
                path,
                SOCKET_PATH_MAX,
            )
            return
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.unlink(missing_ok=True)  # a killed predecessor's
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listener.bind(str(path))
        listener.listen(BACKLOG)
        self.listener = listener
        with self._lock:
            self._spawn()
        threading.Thread(target=self._watch, name="fork-server", daemon=True).start()

    def _spawn(self) -> None:
        assert self.listener is not None
        settings = self.settings
        folder = work_root(settings).parent / f"forkserver-{node_name(settings)}"
        account = account_for(settings.job_user)
        prepare_work_folder(folder, account)
        # Landlock grants only what exists when the server starts: the attempts' folders
        # will all be made beneath this one.
        work_root(settings).mkdir(parents=True, exist_ok=True)
        bundles = node_cache_folder(settings)
        bundles.mkdir(parents=True, exist_ok=True)
        plan = SandboxPlan.for_attempt(
            folder,
            account=account,
            data_roots=settings.data_roots,
            protected=protected_folders(settings),
            extra_readable=[bundles],
            keep_fds=[self.listener.fileno()],
        )
        # Every attempt's folder lies beneath the work root: each launcher narrows to its own.
        plan = replace(plan, writable=(*plan.writable, work_root(settings)))
        command = [
            sys.executable,
            "-m",
            "worker.forkserver.server",
            "--listen-fd",
            str(self.listener.fileno()),
            "--worker-pid",
            str(os.getpid()),
            "--worker-uid",
            str(os.getuid()),
        ]
        self.process = subprocess.Popen(
            plan.command(command),
            env=job_environment(SINGLE_THREADED, folder),
            cwd=folder,
            start_new_session=True,
            pass_fds=[self.listener.fileno()],
        )
        log.info("fork server started (pid %d)", self.process.pid)

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL_S):
            with self._lock:
                if self._stop.is_set() or self.process is None:
                    return
                if self.process.poll() is not None:
                    log.warning(
                        "fork server exited (code %s); starting another", self.process.returncode
                    )
                    self.restarts += 1
                    self._spawn()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after the grace period) and remove its
        socket; attempts it forked are their supervisors' to end."""
        with self._lock:
            self._stop.set()
            process = self.process
        if process is not None:
            signal_group(process, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=STOP_GRACE_S)
            signal_group(process, signal.SIGKILL)
            process.wait()
        if self.listener is not None:
            self.listener.close()
            socket_path(self.settings).unlink(missing_ok=True)
