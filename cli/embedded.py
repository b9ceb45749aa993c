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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from shared.config import Settings
from shared.db import session_scope
from shared.example_data import ExampleDataMissingError, seed_example_data
from shared.messaging import worker_nodename
from shared.migrate import upgrade
from shared.storage import StorageError
from shared.storage.factory import open_storage
from shared.users import LOCAL_USER, create_token, ensure_local_user

# Seconds to wait for the API to answer /readyz after start: gunicorn and its first
# database connection take about a second; a cold Python import cache, several.
READY_TIMEOUT_S = 60.0
# Seconds each process gets to exit after SIGTERM before SIGKILL.
STOP_GRACE_S = 10.0
# API processes of the embedded service (`ganforge up`, the tests): two, so one busy process
# never holds every request; a deployment picks its own (`ganforge api --workers`).
API_WORKERS = 2


def prepare(settings: Settings) -> str:
    """Migrate the database, make sure the local user has a token the CLI can find, and
    store the data the example specs name (shared/example_data.py), so that every file in
    examples/ runs as shipped."""
    settings.home.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    try:
        seed_example_data(open_storage(settings))
    except (ExampleDataMissingError, StorageError) as error:  # the service runs without them
        print(f"ganforge: the example data was not stored: {error}", file=sys.stderr)
    with session_scope(settings.database_url) as session:
        token = ensure_local_user(session)
        if token is None and not settings.token_file.exists():
            token = create_token(session, LOCAL_USER, label="embedded")
    if token is not None:
        settings.token_file.write_text(token + "\n")
        settings.token_file.chmod(0o600)
    return settings.token_file.read_text().strip()


def service_commands(settings: Settings, api_workers: int = API_WORKERS) -> dict[str, list[str]]:
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
            "--config",
            "python:api.gunicorn_conf",  # gthread workers, metrics folder, JSON logs
            "--workers",
            str(api_workers),
            "--threads",  # the API admits streams on part of them (api/stream_slots.py)
            str(settings.api_threads),
            "--access-logfile",
            "-",
            "api.app:create_app()",
        ],
        "scheduler": [python, "-m", "cli", "scheduler"],
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

    def start_worker(self, node_name: str, cpu_slots: int, **changes: object) -> str:
        """Start one more worker, as its own node, its settings changed by `changes`
        (`node_labels`, `warm_sampler`...); returns its process name (`worker-<node>`)."""
        node_settings = self.settings.with_(node_name=node_name, cpu_slots=cpu_slots, **changes)
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

    def wait_ready(
        self, timeout_s: float = READY_TIMEOUT_S, cancelled: Callable[[], bool] = lambda: False
    ) -> bool:
        """Wait until the API answers /readyz; False if `cancelled()` turned true first."""
        from cli.client import Client

        client = Client(self.settings.api_url, None)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if cancelled():
                return False
            self.check_alive()
            if client.ready():
                return True
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


class StopSignals:
    """While entered, SIGTERM and SIGINT (Ctrl-C) only set `requested`: the embedded
    service's loop sees it at its next look and stops every child, never halfway through
    starting one (as a KeyboardInterrupt raised at any line could), and a second signal while
    the children stop cannot cut that short and leave some behind."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, _signum: int, _frame: object) -> None:
        self.requested = True

    def __enter__(self) -> StopSignals:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *_exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
