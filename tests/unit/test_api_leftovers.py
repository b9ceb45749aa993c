"""The API leaves nothing behind and shares nothing with another API on its host: each of its
processes keeps its scratch (the metrics folder, upload copies) under
`$GANFORGE_HOME/run/api/<pid>/`, a start removes what a killed predecessor left, the master
removes a killed worker's folder and, at a clean stop, its own; gunicorn's control socket
(one path per user on the host) is off."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from cli.embedded import service_commands
from shared.config import Settings
from shared.runfolders import API_SERVICE, remove_leftovers, service_folder

# Bounds for a loaded machine: gunicorn imports the app in a second or two.
START_S = 60.0
GONE_S = 30.0


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(condition: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _plant(folder: Path) -> Path:
    (folder / "upload-x").mkdir(parents=True)
    (folder / "upload-x" / "faces.zip").write_bytes(b"a copy of someone's upload")
    return folder


@pytest.fixture
def start_api(
    settings: Settings, tmp_path: Path
) -> Iterator[Callable[[], tuple[subprocess.Popen[bytes], str]]]:
    """Starts gunicorn with the API's config, as `ganforge api` runs it (one worker), with a
    HOME and an XDG_RUNTIME_DIR of its own where gunicorn would put its control socket. A
    function, so a test plants its leftovers before the start that should remove them."""
    url = f"http://127.0.0.1:{_free_port()}"
    command = service_commands(settings.with_(api_url=url), api_workers=1)["api"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GANFORGE_", "PROMETHEUS"))}
    for name in ("user-home", "xdg"):
        (tmp_path / name).mkdir()
    env.update(
        settings.with_(api_url=url).to_env(),
        HOME=str(tmp_path / "user-home"),
        XDG_RUNTIME_DIR=str(tmp_path / "xdg"),
    )
    root = Path(__file__).resolve().parents[2]
    started: list[subprocess.Popen[bytes]] = []

    def start() -> tuple[subprocess.Popen[bytes], str]:
        started.append(subprocess.Popen(command, env=env, cwd=root, stdout=subprocess.DEVNULL))
        return started[-1], url

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.processes  # starts gunicorn: outside `make test-fast`
def test_a_start_removes_a_dead_predecessors_folders_a_stop_its_own_and_no_control_socket(
    settings: Settings,
    tmp_path: Path,
    start_api: Callable[[], tuple[subprocess.Popen[bytes], str]],
) -> None:
    folders = service_folder(settings, API_SERVICE)
    dead = _plant(folders / str(_dead_pid()))
    live = _plant(folders / str(os.getpid()))  # another API's process, still running
    process, url = start_api()  # after the planting: its start must find them
    assert _wait(lambda: _answers(url), START_S), "the API did not start"
    assert not dead.exists(), "a killed predecessor's upload copy outlived the next start"
    assert live.exists(), "a live process's folder was removed"
    master = folders / str(process.pid)
    assert (master / "metrics").is_dir()

    (worker,) = _children(process.pid)
    in_flight = _plant(folders / str(worker))  # the worker dies in the middle of an upload
    os.kill(worker, signal.SIGKILL)
    assert _wait(lambda: not in_flight.exists(), GONE_S), "a killed worker's folder was kept"
    assert _wait(lambda: _answers(url), START_S), "the master did not replace its worker"

    # No control socket, where gunicorn would have put it: two APIs would share it.
    assert not list((tmp_path / "xdg").iterdir())
    assert not (tmp_path / "user-home" / ".gunicorn").exists()

    process.send_signal(signal.SIGTERM)
    process.wait(timeout=GONE_S)
    assert not master.exists(), "a clean stop left the master's folder"
    assert live.exists()


def test_leftovers_are_told_by_their_owners_pid(settings: Settings) -> None:
    folders = service_folder(settings, API_SERVICE)
    dead, live = _plant(folders / str(_dead_pid())), _plant(folders / str(os.getppid()))
    mine = _plant(folders / str(os.getpid()))  # at a start: a predecessor with the same pid
    other = _plant(folders / "not-a-pid")
    assert remove_leftovers(settings, API_SERVICE) == sorted([dead, mine])
    assert live.exists() and other.exists()
