"""The worker's warm samplers: one process per device, started with the worker, started again
when one dies (killed on a cancel past its grace period, crashed, OOM-killed), stopped with it.
Their sockets lie in the worker's folder under $GANFORGE_HOME/run (worker/warm/protocol.py):
removed when the worker starts (a killed predecessor's) and when it stops.

Runs in the Celery worker's main process, which never imports torch: each sampler is
`python -m worker.warm.process` in its own process group, with its device pinned as a rank's
would be, writing to the worker's own output.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from typing import Any

from shared.config import Settings
from worker.node import node_name, work_root
from worker.sandbox.account import prepare_work_folder
from worker.sandbox.environment import job_environment
from worker.warm.sockets import SOCKET_PATH_MAX, socket_folder, socket_path

log = logging.getLogger(__name__)

# Seconds between looks at the samplers: a dead one is replaced within about this long.
WATCH_INTERVAL_S = 0.5
# A sampler asked to stop (SIGTERM) gets this long before SIGKILL; it holds nothing to save.
STOP_GRACE_S = 5.0


class WarmSamplers:
    """Keeps one sampler process alive per device until `stop()`."""

    def __init__(self, settings: Settings, devices: list[dict[str, Any]]) -> None:
        self.settings = settings
        self.devices = devices
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.restarts = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> None:
        if not self.settings.warm_sampler:
            return
        self._remove_sockets()  # a killed predecessor's
        paths = [socket_path(self.settings, int(device["index"])) for device in self.devices]
        if any(len(os.fsencode(path)) > SOCKET_PATH_MAX for path in paths):
            log.warning(
                "no warm samplers: their sockets (%s) would be longer than %d bytes; set a "
                "shorter GANFORGE_HOME (sampling jobs run on the cold path meanwhile)",
                paths[0],
                SOCKET_PATH_MAX,
            )
            return
        socket_folder(self.settings).mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._lock:
            for device in self.devices:
                self._spawn(int(device["index"]))
        threading.Thread(target=self._watch, name="warm-samplers", daemon=True).start()

    def _spawn(self, index: int) -> None:
        """A sampler with a job process's environment (the allow-list: no credentials; each
        job's inputs and outputs go through that job's agent), its device pinned."""
        pinned = {}
        if any(device["kind"] == "gpu" for device in self.devices):
            pinned["CUDA_VISIBLE_DEVICES"] = str(index)
        folder = work_root(self.settings).parent / f"warm-{node_name(self.settings)}-{index}"
        prepare_work_folder(folder, None)
        env = job_environment(pinned, folder)
        command = [
            sys.executable,
            "-m",
            "worker.warm.process",
            "--device-index",
            str(index),
            "--worker-pid",
            str(os.getpid()),
            "--socket",
            str(socket_path(self.settings, index)),
            "--cache",
            str(self.settings.sampler_cache),
            "--threads",
            str(self.settings.torch_threads or 0),
        ]
        self.processes[index] = subprocess.Popen(
            command, env=env, cwd=folder, start_new_session=True
        )
        log.info("warm sampler for device %d started (pid %d)", index, self.processes[index].pid)

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL_S):
            with self._lock:
                if self._stop.is_set():
                    return
                for index, process in list(self.processes.items()):
                    if process.poll() is not None:
                        log.warning(
                            "warm sampler for device %d exited (code %s); starting another",
                            index,
                            process.returncode,
                        )
                        self.restarts += 1
                        self._spawn(index)

    def stop(self) -> None:
        """Stop every sampler (SIGTERM, then SIGKILL after the grace period)."""
        with self._lock:
            self._stop.set()
            processes = list(self.processes.values())
        for process in processes:
            signal_group(process, signal.SIGTERM)
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=STOP_GRACE_S)
            signal_group(process, signal.SIGKILL)
            process.wait()
        self._remove_sockets()

    def _remove_sockets(self) -> None:
        """The node's sampler sockets, once no sampler of this worker listens on them."""
        for path in socket_folder(self.settings).glob("warm-*.sock"):
            path.unlink(missing_ok=True)


def signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the process group a helper of the worker leads (a sampler, the fork server)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
