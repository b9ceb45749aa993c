"""The worker's node agent: what devices this node offers, its registration and heartbeat.

GPUs are found with `nvidia-smi` (a subprocess, so this process never initialises CUDA before
Celery forks its pool); a node without one offers GANFORGE_CPU_SLOTS CPU slots, which is how CI
and the embedded mode run. The agent registers the node when the worker is ready and beats
every few seconds from a thread of the worker's main process; when the database says the node
was declared dead (its jobs given away), it registers again, and the supervisors of the jobs it
lost notice their attempt has moved on and kill their processes.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

from shared.config import Settings
from shared.db import is_unreachable, session_scope
from shared.pool.nodes import (
    heartbeat_interval_s,
    heartbeat_node,
    register_node,
    retire_node,
    stop_taking_work,
)
from shared.pool.preemption import request_preemption, running_on
from shared.pool.wakeup import wake_scheduler

log = logging.getLogger(__name__)

# nvidia-smi answers in well under a second; a hung driver must not hang the worker's start.
NVIDIA_SMI_TIMEOUT_S = 20.0


def node_name(settings: Settings) -> str:
    return settings.node_name or socket.gethostname()


def node_address(settings: Settings) -> str:
    """The address other nodes reach this one at (a gang's rendezvous)."""
    return settings.node_address or socket.gethostbyname(socket.gethostname())


def work_root(settings: Settings) -> Path:
    """Where this node's attempts keep their work folders (stop and result files, fetched
    data): one folder per node, emptied when its worker starts, so nothing a killed worker
    left behind outlives it."""
    return settings.home / "work" / node_name(settings)


def node_queue(settings: Settings, name: str) -> str:
    """The Celery queue only this node consumes."""
    return f"{settings.queue}.node.{name}"


def detect_devices(settings: Settings) -> list[dict[str, Any]]:
    """This node's GPUs, or its CPU slots when it has none."""
    gpus = nvidia_gpus()
    if gpus:
        return gpus
    return [
        {"index": index, "kind": "cpu", "model": "cpu slot", "memory_mb": None}
        for index in range(settings.cpu_slots)
    ]


def nvidia_gpus() -> list[dict[str, Any]]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    query = "--query-gpu=index,name,memory.total"
    try:
        answer = subprocess.run(
            [exe, query, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("nvidia-smi failed (%s); offering CPU slots", exc)
        return []
    gpus = []
    for line in answer.stdout.strip().splitlines():
        index, model, memory = (part.strip() for part in line.split(","))
        gpus.append({"index": int(index), "kind": "gpu", "model": model, "memory_mb": int(memory)})
    return gpus


class NodeAgent:
    """Registers this node and keeps its heartbeat going until `stop()`."""

    def __init__(self, settings: Settings, devices: list[dict[str, Any]]) -> None:
        self.settings = settings
        self.name = node_name(settings)
        self.queue = node_queue(settings, self.name)
        self.devices = devices
        self.boot_id = ""
        self._stop = threading.Event()

    def register(self) -> None:
        with session_scope(self.settings.database_url) as session:
            self.boot_id = register_node(
                session,
                name=self.name,
                queue=self.queue,
                devices=self.devices,
                labels=self.settings.labels,
                address=node_address(self.settings),
            )
        log.info("node %s registered with %d device(s)", self.name, len(self.devices))
        wake_scheduler(self.settings, "node registered")  # jobs may be waiting for its devices

    def start(self) -> None:
        self.clear_work_folders()
        self.register()
        threading.Thread(target=self._beat, name="node-heartbeat", daemon=True).start()

    def clear_work_folders(self) -> None:
        """Remove what attempts of this node's previous life left (no job runs here yet)."""
        root = work_root(self.settings)
        stale = list(root.iterdir()) if root.is_dir() else []
        for folder in stale:
            shutil.rmtree(folder, ignore_errors=True)
        if stale:
            log.info("node %s: removed %d stale work folder(s)", self.name, len(stale))

    def give_jobs_back(self) -> None:
        """The worker was told to stop: take no more work, and ask every job it runs to
        checkpoint and be requeued (elsewhere, since this node is now `stopped`)."""
        self._stop.set()  # a heartbeat would bring the node back up
        with session_scope(self.settings.database_url) as session:
            stop_taking_work(session, self.name, self.boot_id)
            jobs = running_on(session, self.name)
            request_preemption(session, jobs, f"worker on {self.name} stopping")
        log.info(
            "node %s stopping: %d job(s) asked to checkpoint and requeue", self.name, len(jobs)
        )

    def stop(self) -> None:
        """Stop heartbeating and mark the node stopped (its jobs are gone by now)."""
        self._stop.set()
        if self.boot_id:
            with session_scope(self.settings.database_url) as session:
                retire_node(session, self.name, self.boot_id)

    def _beat(self) -> None:
        interval = heartbeat_interval_s(self.settings.node_timeout_s)
        while not self._stop.wait(interval):
            try:
                with session_scope(self.settings.database_url) as session:
                    alive = heartbeat_node(session, self.name, self.boot_id)
                if not alive and not self._stop.is_set():
                    log.warning("node %s was declared dead; registering again", self.name)
                    self.register()
            except Exception as error:  # the database may be down a while: beat again later
                if is_unreachable(error):
                    log.warning("node heartbeat failed, database unreachable: %s", error.orig)
                else:
                    log.exception("node heartbeat failed")
