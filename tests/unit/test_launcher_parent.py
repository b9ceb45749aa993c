"""A launcher (and a warm sampler, which shares the watch) dies with the worker that started
it, even when that worker died while it was still importing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

# The watch acts at once; the bound is generous for a loaded machine.
GONE_WITHIN_S = 60.0
# The child outlasts its parent before it starts the watch, as a slow import would: it
# waits for the parent to be gone (a bounded wait, so nothing is left behind if it never is).
CHILD = (
    "import os, sys, time\n"
    "parent = int(sys.argv[1])\n"
    "deadline = time.monotonic() + 60\n"
    "while os.getppid() == parent and time.monotonic() < deadline:\n"
    "    time.sleep(0.01)\n"
    "from worker.launcher import exit_with_parent\n"
    "exit_with_parent(parent)\n"
    "time.sleep(600)\n"
)
# Starts the child in its own session, as the supervisor does, tells it its pid, and exits.
PARENT = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen([sys.executable, '-c', sys.argv[1], str(os.getpid())],"
    " start_new_session=True)\n"
    "print(child.pid, flush=True)\n"
)


def alive(pid: int) -> bool:
    """Running, not a zombie its new parent has yet to reap."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.mark.processes  # starts processes: outside `make test-fast`
def test_a_child_whose_parent_died_while_it_imported_kills_itself() -> None:
    root = Path(__file__).resolve().parents[2]
    parent = subprocess.run(
        [sys.executable, "-c", PARENT, CHILD],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=60,
    )
    child = int(parent.stdout.strip())
    try:
        deadline = time.monotonic() + GONE_WITHIN_S
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(child), "the orphaned child kept running"
    finally:
        if alive(child):
            os.kill(child, 9)
