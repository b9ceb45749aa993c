"""A node's warm-sampler sockets live in its worker's folder under $GANFORGE_HOME/run, not in
the system's temporary folder: a start removes those a killed predecessor left, a clean stop
its own."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from shared.config import Settings
from worker.node import detect_devices
from worker.warm.samplers import WarmSamplers
from worker.warm.sockets import socket_folder, socket_path

# A sampler imports torch before it binds: seconds, more on a loaded machine.
LISTENING_WITHIN_S = 120.0


def _stale_socket(path: Path) -> None:
    """A socket file whose process is gone, as a SIGKILL leaves it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))


def _accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        try:
            client.connect(str(path))
        except OSError:
            return False
    return True


@pytest.mark.processes  # starts a warm sampler: outside `make test-fast`
def test_a_start_replaces_a_predecessors_sockets_and_a_stop_removes_its_own(
    settings: Settings,
) -> None:
    settings = settings.with_(node_name="n1", cpu_slots=1, warm_sampler=True)
    mine, extra = socket_path(settings, 0), socket_path(settings, 5)
    assert mine.is_relative_to(settings.home / "run")
    _stale_socket(mine)
    _stale_socket(extra)  # from a predecessor with more devices
    samplers = WarmSamplers(settings, detect_devices(settings))
    samplers.start()
    try:
        assert not extra.exists(), "a killed predecessor's socket outlived the start"
        deadline = time.monotonic() + LISTENING_WITHIN_S
        while not _accepts(mine) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _accepts(mine), "the sampler never listened"
    finally:
        samplers.stop()
    assert not list(socket_folder(settings).iterdir()), "a clean stop left a socket"
