"""The README's first command, minus the install: the embedded service needs no server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.client import Client
from shared.config import ClientConfig
from worker.gan.distributed import find_free_port

# The embedded service needs none of the suite's servers: `make test` runs this module beside
# the service suites, with the unit suite.
pytestmark = pytest.mark.no_servers


def test_demo_runs_a_job_on_sqlite_local_folder_and_file_broker(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GANFORGE_", "AWS_"))},
        "GANFORGE_HOME": str(home),
        "GANFORGE_API_URL": f"http://127.0.0.1:{find_free_port()}",
        "GANFORGE_TORCH_THREADS": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "cli", "demo", "--steps", "60"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "succeeded" in result.stdout
    (job_folder,) = (home / "artifacts" / "jobs").iterdir()
    assert (job_folder / "checkpoints" / "step-000060.pt").stat().st_size > 0
    assert (job_folder / "samples" / "step-000060.png").read_bytes()[:4] == b"\x89PNG"
    # The run's own verdict and the path of its picture.
    assert "quality at step 60: " in result.stdout and " modes, " in result.stdout
    assert (job_folder / "evaluations" / "step-000060.png").read_bytes()[:4] == b"\x89PNG"
    assert str(job_folder) in result.stdout.replace("\n", "")
    # The live picture: each evaluation picture's path as the run stores it.
    live = result.stdout.replace("\n", "").split("picture at step 60: ", 1)[1]
    assert live.startswith(str(job_folder / "evaluations" / "step-000060.png"))
    assert (home / "token").read_text().startswith("gf_")
    assert (home / "ganforge.db").exists()


def _descendants(root: int) -> set[int]:
    """Every live process below `root` (children in their own sessions included)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_up_stops_every_child_on_sigterm_or_ctrl_c_and_starts_again(tmp_path: Path) -> None:
    port = find_free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("GANFORGE_", "AWS_"))},
        "GANFORGE_HOME": str(tmp_path / "home"),
        "GANFORGE_API_URL": f"http://127.0.0.1:{port}",
        "GANFORGE_TORCH_THREADS": "1",
    }
    for stop in (signal.SIGTERM, signal.SIGINT):
        command = [sys.executable, "-m", "cli", "up"]
        if stop == signal.SIGINT:  # the port from the command line, not the environment
            env.pop("GANFORGE_API_URL")
            command += ["--port", str(port)]
        up = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while not Client(f"http://127.0.0.1:{port}", None).ready():
                assert up.poll() is None, up.communicate()[0].decode()[-3000:]
                assert time.monotonic() < deadline, "the embedded service never got ready"
                time.sleep(0.5)
            children = _descendants(up.pid)
            assert len(children) >= 3, "the API, the scheduler and the worker"
            # Later commands find the service `up` recorded, with its token.
            found = ClientConfig.resolve(environ={"GANFORGE_HOME": env["GANFORGE_HOME"]})
            assert found.url == f"http://127.0.0.1:{port}" and found.token
            up.send_signal(stop)
            output = up.communicate(timeout=60)[0].decode()
        finally:
            if up.poll() is None:
                up.kill()
        assert up.returncode == 0, output[-3000:]
        assert "stopped" in output
        assert not [pid for pid in children if _alive(pid)], f"left behind after {stop!r}"
        assert _port_free(port)
        # Nor scratch: no process's folder, socket or file under $GANFORGE_HOME/run.
        run = tmp_path / "home" / "run"
        left = [p for p in run.rglob("*") if p.name.isdigit() or not p.is_dir()]
        assert not left, f"left in $GANFORGE_HOME/run after {stop!r}"
