"""The service as processes: API (gunicorn), scheduler and one Celery worker.

`ServiceProcesses` starts them with the environment of one `Settings`, waits until the API
says it is ready, and stops them all (process groups, SIGTERM then SIGKILL). The embedded mode
(`ganforge up` / `ganforge demo`) and the end-to-end tests both use it, so the tests run the
same commands a lab runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from shared.config import Settings
from shared.db import session_scope
from shared.messaging import worker_nodename
from shared.migrate import upgrade
from shared.users import LOCAL_USER, create_token, ensure_local_user

# Seconds to wait for the API to answer /readyz after start: gunicorn and its first
# database connection take about a second; a cold Python import cache, several.
READY_TIMEOUT_S = 60.0
# Seconds each process gets to exit after SIGTERM before SIGKILL.
STOP_GRACE_S = 10.0


def prepare(settings: Settings) -> str:
    """Migrate the database and make sure the local user has a token the CLI can find."""
    settings.home.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    with session_scope(settings.database_url) as session:
        token = ensure_local_user(session)
        if token is None and not settings.token_file.exists():
            token = create_token(session, LOCAL_USER, label="embedded")
    if token is not None:
        settings.token_file.write_text(token + "\n")
        settings.token_file.chmod(0o600)
    return settings.token_file.read_text().strip()


def service_commands(settings: Settings, api_workers: int = 2) -> dict[str, list[str]]:
    url = urlparse(settings.api_url)
    bind = f"{url.hostname or '127.0.0.1'}:{url.port or 80}"
    python = sys.executable
    return {
        "api": [
            python,
            "-m",
            "gunicorn",
            "--bind",
            bind,
            "--workers",
            str(api_workers),
            "--threads",
            "4",
            "--access-logfile",
            "-",
            "api.app:create_app()",
        ],
        "scheduler": [python, "-m", "shared.cli", "scheduler"],
        # Queue and pool size follow the node's devices (worker/celery_app.py).
        "worker": [
            python,
            "-m",
            "celery",
            "-A",
            "worker.celery_app",
            "worker",
            "--loglevel",
            "INFO",
            "--hostname",
            worker_nodename(settings),
        ],
    }


@dataclass
class ServiceProcesses:
    settings: Settings
    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, names: tuple[str, ...] = ("api", "scheduler", "worker")) -> None:
        commands = service_commands(self.settings)
        for name in names:
            self._launch(name, commands[name], self.settings)

    def start_worker(self, node_name: str, cpu_slots: int) -> str:
        """Start one more worker, as its own node; returns its process name (`worker-<node>`)."""
        node_settings = self.settings.with_(node_name=node_name, cpu_slots=cpu_slots)
        name = f"worker-{node_name}"
        self._launch(name, service_commands(node_settings)["worker"], node_settings)
        return name

    def _launch(self, name: str, command: list[str], settings: Settings) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{name}.log").open("ab") as log_file:
            self.processes[name] = subprocess.Popen(
                command,
                env={**os.environ, **settings.to_env()},
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def pause(self, name: str, paused: bool = True) -> None:
        """SIGSTOP (or SIGCONT) a process's group: a machine that hangs, then comes back."""
        _signal_group(self.processes[name], signal.SIGSTOP if paused else signal.SIGCONT)

    def kill(self, name: str) -> None:
        """SIGKILL a process's whole group at once, as when its machine dies."""
        process = self.processes.pop(name)
        _signal_group(process, signal.SIGKILL)
        process.wait()

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        from shared.client import Client

        client = Client(self.settings.api_url, None)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            if client.ready():
                return
            time.sleep(0.2)
        raise TimeoutError(f"the API at {self.settings.api_url} was not ready in {timeout_s:.0f} s")

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                log = (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with code {process.returncode}:\n{log}")

    def stop(self, names: tuple[str, ...] | None = None) -> None:
        chosen = [n for n in (names or tuple(self.processes)) if n in self.processes]
        for name in chosen:  # the leader shuts its own children down (warm shutdown)
            self.processes[name].send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for name in chosen:
            process = self.processes.pop(name)
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
            _signal_group(process, signal.SIGKILL)  # whatever the leader left behind

    def __enter__(self) -> ServiceProcesses:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
