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

from sqlalchemy import select, update

from shared.config import Settings
from shared.db import session_scope
from shared.models import Job
from worker.supervisor import RunFiles

# Rendezvous attempts before giving up on finding a free port.
PORT_TRIES = 3
# Seconds between checks that the supervising worker is still alive.
PARENT_CHECK_S = 1.0
# A gang's other nodes wait this long for node rank 0 to publish its rendezvous: its worker
# may be busy starting (torch import, data download) or its message still in flight.
RENDEZVOUS_TIMEOUT_S = 300.0
RENDEZVOUS_POLL_S = 0.2


def threads_per_rank(settings: Settings, world_size: int) -> int:
    """Threads each rank may use, so that ranks x threads never exceeds the node's cores."""
    if settings.torch_threads:
        return settings.torch_threads
    return max(1, (os.cpu_count() or 1) // world_size)


def exit_with_parent(parent_pid: int) -> None:
    """Kill this process group once `parent_pid` (the process that started it, named on its
    command line) is no longer its parent, so nothing of it outlives its supervisor. The pid
    comes from the parent itself: one that dies while this process still imports has already
    left it to init (or a subreaper), so the parent found at this point proves nothing."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_S)
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--job-id", required=True)
    parser.add_argument("--attempt", type=int, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--node-rank", type=int, default=0, help="this node's place in a gang")
    parser.add_argument("--local-ranks", type=int, default=None, help="ranks on this node")
    parser.add_argument("--parent-pid", type=int, default=None, help="the supervising worker")
    args = parser.parse_args(argv)
    # Without it (a worker still running the code from before it, during an upgrade in
    # place), the parent found now: the old behaviour, racy only if the worker already died.
    exit_with_parent(args.parent_pid or os.getppid())
    settings = Settings.from_env()
    files = RunFiles(args.workdir)
    with session_scope(settings.database_url) as session:
        kind, devices = session.execute(
            select(Job.kind, Job.devices).where(Job.id == args.job_id)
        ).one()
    world_size = devices if kind == "train" else 1
    local_ranks = min(args.local_ranks or world_size, world_size)

    import torch.multiprocessing as mp  # imported late: the argument errors above are instant

    from worker.gan.distributed import LOCALHOST, find_free_port
    from worker.rank import RankArgs, rank_main

    def start(address: str, port: int) -> None:
        rank_args = RankArgs(
            job_id=args.job_id,
            attempt=args.attempt,
            workdir=str(args.workdir),
            world_size=world_size,
            port=port,
            threads=threads_per_rank(settings, local_ranks),
            rank_offset=args.node_rank * local_ranks,
            master_addr=address,
        )
        mp.start_processes(rank_main, args=(rank_args,), nprocs=local_ranks, start_method="spawn")

    try:
        if local_ranks == world_size:  # one node: rendezvous here, retried on a port race
            for try_number in range(PORT_TRIES):
                try:
                    start(LOCALHOST, find_free_port())
                    break
                except mp.ProcessRaisedException as exc:
                    if "address already in use" in str(exc).lower() and try_number + 1 < PORT_TRIES:
                        continue
                    raise
        else:
            address, port = rendezvous(settings, args.job_id, args.attempt, args.node_rank)
            start(address, port)
    except mp.ProcessRaisedException as exc:
        # A rank's own error fails the job, unless a rank saw the machinery fail (a peer
        # gone, storage away): then the attempt is lost and requeued.
        status = "lost" if any(files.workdir.glob("lost-rank*.txt")) else "failed"
        _write_failure(files, _first_error(files) or str(exc).strip().splitlines()[-1], status)
        return 1
    except mp.ProcessExitedException as exc:  # killed by a signal (OOM killer, kill -9)
        _write_failure(files, f"a rank process died: {exc}", "lost")
        return 1
    except RendezvousError as exc:
        _write_failure(files, str(exc), "lost")
        return 1
    if not files.result.exists():
        _write_failure(files, "the ranks exited without reporting a result")
        return 1
    return 0


class RendezvousError(RuntimeError):
    """The gang's rank-0 node never published where to meet."""


def rendezvous(settings: Settings, job_id: str, attempt: int, node_rank: int) -> tuple[str, int]:
    """Where a gang's ranks meet: node rank 0 picks its address and a free port and publishes
    them with the attempt; the other nodes wait for them (rank 0's process group store accepts
    their connections as soon as it starts)."""
    from worker.gan.distributed import find_free_port
    from worker.node import node_address

    if node_rank == 0:
        address, port = node_address(settings), find_free_port()
        with session_scope(settings.database_url) as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.attempt == attempt)
                .values(rendezvous=f"{attempt}@{address}:{port}")
            )
        return address, port
    deadline = time.monotonic() + RENDEZVOUS_TIMEOUT_S
    while time.monotonic() < deadline:
        with session_scope(settings.database_url) as session:
            published = session.scalar(select(Job.rendezvous).where(Job.id == job_id))
        if published and published.startswith(f"{attempt}@"):
            address, _, port = published.partition("@")[2].rpartition(":")
            return address, int(port)
        time.sleep(RENDEZVOUS_POLL_S)
    raise RendezvousError(
        f"node rank 0 of attempt {attempt} published no rendezvous in {RENDEZVOUS_TIMEOUT_S:.0f} s"
    )


def _first_error(files: RunFiles) -> str | None:
    errors = sorted(files.workdir.glob("error-rank*.txt"))
    return errors[0].read_text() if errors else None


def _write_failure(files: RunFiles, error: str, status: str = "failed") -> None:
    """`failed` (the job's fault, final) or `lost` (the machinery's: requeued)."""
    files.result.write_text(json.dumps({"status": status, "error": error}))


if __name__ == "__main__":
    sys.exit(main())
