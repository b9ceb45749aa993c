"""The worker's malloc settings give back what its short-lived threads freed (the soak's
worker growth, worker/malloc_settings.py). Measured in a fresh interpreter: the allocator's
thresholds are process-wide and the test process's own history would blur the figure."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# What a fresh process keeps resident after the threads below end, with the settings: about
# 1.3 MiB measured; without them, about 32 MiB (each thread's 16 MiB, twice over).
RESIDENT_GROWTH_LIMIT_KIB = 4 * 1024

# A thread as an agent's: it allocates and frees in an arena of its own, then ends. Before
# them a large block is freed, which (without the settings) makes glibc raise its thresholds,
# as a payload does in a worker.
SCRIPT = textwrap.dedent(
    """
    import sys, threading
    from worker.malloc_settings import return_freed_memory

    def anonymous_kib():
        with open("/proc/self/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Anonymous:"):
                    return int(line.split()[1])

    if not return_freed_memory():
        sys.exit("return_freed_memory() refused")
    large = bytes(16 << 20)
    del large

    def serve_a_job():
        blocks = [bytes(range(256)) * 40 for _ in range(1600)]  # 16 MiB in 10 KiB blocks
        del blocks

    before = anonymous_kib()
    for _ in range(3):
        thread = threading.Thread(target=serve_a_job)
        thread.start()
        thread.join()
    print(anonymous_kib() - before)
    """
)


@pytest.mark.processes
def test_memory_freed_by_ended_threads_is_given_back_to_the_system() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    growth_kib = int(done.stdout)
    assert growth_kib < RESIDENT_GROWTH_LIMIT_KIB, f"{growth_kib} KiB stayed resident"
