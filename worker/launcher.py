"""`python -m worker.launcher`: start the k rank processes of one job attempt and wait.

Runs as the leader of its own process group (the supervisor kills the group to cancel), in
the attempt's sandbox: it knows the job only from its agent's ticket (worker/channel/).
Ranks are started with `spawn` (or forked, by a launcher the node's fork server forked:
worker/forkserver/), one per device even when that is one, on a rendezvous port
picked free for this job; "address already in use" (another job grabbed the port between our
probe and the bind) is retried on a new port. A gang's nodes learn where to meet from their
agents. How the ranks ended goes to the agent as the attempt's result.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time

from worker.channel.link import AgentLink, AgentUnavailableError
from worker.channel.ticket import JobTicket

# Rendezvous attempts before giving up on finding a free port.
PORT_TRIES = 3
# Seconds between checks that the supervising worker is still alive.
PARENT_CHECK_S = 1.0


def threads_per_rank(torch_threads: int | None, world_size: int) -> int:
    """Threads each rank may use, so that ranks x threads never exceeds the node's cores."""
    if torch_threads:
        return torch_threads
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


def main(argv: list[str] | None = None, start_method: str = "spawn") -> int:
    """Run the attempt's ranks to their end. `start_method` "fork" is for a launcher forked by
    the node's fork server (worker/forkserver/), which imported torch and the engine before
    it forked: its ranks are forked from it in turn, before any of them computes, and start
    at once; a launcher started cold spawns fresh interpreters."""
    parser = argparse.ArgumentParser(description=__doc__)
    # For people and tools looking at the node's processes (`ps`): the job itself, spec and
    # all, comes from the agent, whatever these say.
    parser.add_argument("--job-id", default=None, help="the job this attempt runs (shown only)")
    parser.add_argument("--attempt", type=int, default=None, help="its attempt (shown only)")
    parser.add_argument("--node-rank", type=int, default=0, help="this node's place in a gang")
    parser.add_argument("--local-ranks", type=int, default=None, help="ranks on this node")
    parser.add_argument("--parent-pid", type=int, default=None, help="the supervising worker")
    args = parser.parse_args(argv)
    # Without it (a worker still running the code from before it, during an upgrade in
    # place), the parent found now: the old behaviour, racy only if the worker already died.
    exit_with_parent(args.parent_pid or os.getppid())
    link = AgentLink.from_environment()
    reply, _ = link.call("ticket")
    ticket = JobTicket.from_json(reply["ticket"])
    world_size = ticket.world_size
    local_ranks = min(args.local_ranks or world_size, world_size)

    import torch.multiprocessing as mp  # imported late: the argument errors above are instant

    from worker.gan.distributed import LOCALHOST, find_free_port
    from worker.rank import RankArgs, rank_main

    def start(address: str, port: int) -> None:
        rank_args = RankArgs(
            world_size=world_size,
            port=port,
            threads=threads_per_rank(ticket.torch_threads, local_ranks),
            rank_offset=args.node_rank * local_ranks,
            master_addr=address,
        )
        mp.start_processes(
            rank_main, args=(rank_args,), nprocs=local_ranks, start_method=start_method
        )

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
            meeting, _ = link.call("rendezvous", node_rank=args.node_rank)
            start(str(meeting["address"]), int(meeting["port"]))
    except mp.ProcessRaisedException as exc:
        # A rank's own error fails the job, unless a rank saw the machinery fail (a peer
        # gone, storage away): the agent knows which from the ranks' reports.
        link.call("result", status="rank_failed", error=str(exc).strip().splitlines()[-1])
        return 1
    except mp.ProcessExitedException as exc:  # killed by a signal (OOM killer, kill -9)
        link.call("result", status="lost", error=f"a rank process died: {exc}")
        return 1
    except AgentUnavailableError as exc:  # no rendezvous published, or the agent went away
        link.call("result", status="lost", error=str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
