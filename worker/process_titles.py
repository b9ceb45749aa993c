"""What `ps` and /proc/<pid>/cmdline show of an attempt's processes.

A cold launcher's command line names its job and attempt (`python -m worker.launcher --job-id
... --attempt ...`), but a launcher forked by the fork server would show the server's, and
every rank the launcher's (or multiprocessing's spawn entry point): an operator looking for a
job's processes, or a tool killing one rank, could not tell them apart. So each sets its
title (setproctitle rewrites the process's argument area, which is what both read).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from setproctitle import setproctitle


def title_launcher(argv: Sequence[str]) -> None:
    """The launcher's title: its cold command line, whichever way it was started."""
    setproctitle(" ".join([sys.executable, "-m", "worker.launcher", *argv]))


def title_rank(job_id: str, attempt: int, rank: int, world_size: int) -> None:
    setproctitle(f"ganforge rank {rank} of {world_size} --job-id {job_id} --attempt {attempt}")
