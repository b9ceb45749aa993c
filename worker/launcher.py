"""`python -m worker.launcher`: start the k rank processes of one job attempt and wait.

Runs as the leader of its own process group (the supervisor kills the group to cancel).
Ranks are started with `spawn`, one per device even when that is one, on a rendezvous port
picked free for this job; "address already in use" (another job grabbed the port between our
probe and the bind) is retried on a new port. Writes result.json for the supervisor.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import select

from shared.config import Settings
from shared.db import session_scope
from shared.models import Job
from worker.supervisor import RunFiles

# Rendezvous attempts before giving up on finding a free port.
PORT_TRIES = 3
# Seconds between checks that the supervising worker is still alive.
PARENT_CHECK_S = 1.0


def threads_per_rank(settings: Settings, world_size: int) -> int:
    """Threads each rank may use, so that ranks x threads never exceeds the node's cores."""
    if settings.torch_threads:
        return settings.torch_threads
    return max(1, (os.cpu_count() or 1) // world_size)


def exit_with_parent() -> None:
    """Kill this process group when the supervisor dies, so no rank outlives its worker."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_S)
            if os.getppid() != parent:
                os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--job-id", required=True)
    parser.add_argument("--attempt", type=int, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args(argv)
    exit_with_parent()
    settings = Settings.from_env()
    files = RunFiles(args.workdir)
    with session_scope(settings.database_url) as session:
        kind, devices = session.execute(
            select(Job.kind, Job.devices).where(Job.id == args.job_id)
        ).one()
    world_size = devices if kind == "train" else 1

    import torch.multiprocessing as mp  # imported late: the argument errors above are instant

    from worker.gan.distributed import find_free_port
    from worker.rank import RankArgs, rank_main

    for try_number in range(PORT_TRIES):
        rank_args = RankArgs(
            job_id=args.job_id,
            attempt=args.attempt,
            workdir=str(args.workdir),
            world_size=world_size,
            port=find_free_port(),
            threads=threads_per_rank(settings, world_size),
        )
        try:
            mp.start_processes(
                rank_main, args=(rank_args,), nprocs=world_size, start_method="spawn"
            )
            break
        except mp.ProcessRaisedException as exc:
            if "address already in use" in str(exc).lower() and try_number + 1 < PORT_TRIES:
                continue
            _write_failure(files, _first_error(files) or str(exc).strip().splitlines()[-1])
            return 1
        except mp.ProcessExitedException as exc:
            _write_failure(files, _first_error(files) or f"a rank process died: {exc}")
            return 1
    if not files.result.exists():
        _write_failure(files, "the ranks exited without reporting a result")
        return 1
    return 0


def _first_error(files: RunFiles) -> str | None:
    errors = sorted(files.workdir.glob("error-rank*.txt"))
    return errors[0].read_text() if errors else None


def _write_failure(files: RunFiles, error: str) -> None:
    files.result.write_text(json.dumps({"status": "failed", "error": error}))


if __name__ == "__main__":
    sys.exit(main())
