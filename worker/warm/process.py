"""`python -m worker.warm.process --device-index i`: one device's warm sampler.

Imports torch once and caps its threads as a launcher's rank would (GANFORGE_TORCH_THREADS, or
the node's cores for one rank), then serves sampling jobs one at a time on its Unix socket
(`protocol.py`). It is sandboxed as a rank is: no credentials, and everything of a job comes
through that job's own agent, whose socket the task sends with the job. Each job runs through
`worker.sampling.run_sampling`, exactly as a rank of the cold path runs it (same reporter,
same log lines, same artifacts, same bytes), with the checkpoint taken from the process's
bounded cache. The worker's main process started it in its own process group, with the device
pinned (CUDA_VISIBLE_DEVICES), and restarts it when it dies; it exits by itself when that
parent is gone.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.specs import SampleSpec, parse_spec
from worker.channel.link import AgentLink
from worker.channel.ticket import JobTicket
from worker.launcher import exit_with_parent, threads_per_rank
from worker.reporter import JobReporter
from worker.warm.cache import LoadedCache
from worker.warm.protocol import Lines, send

log = logging.getLogger("worker.warm")

# Connections queued while a job runs: one pool slot per device sends one job at a time, and
# a redelivered message may knock while the first is still running.
BACKLOG = 4
# A task sends its job as soon as it connects; a connection silent this long holds nothing.
REQUEST_TIMEOUT_S = 10.0


class WarmSampler:
    """The process's state: torch and the cache of loaded checkpoints, made once."""

    def __init__(self, torch_threads: int, cache_size: int) -> None:
        import torch  # the one import of torch this process makes, before any job

        torch.set_num_threads(threads_per_rank(torch_threads, 1))
        import worker.rank  # noqa: F401  (the cold path's modules, loaded before the first job)

        self.cache: LoadedCache[dict[str, Any]] = LoadedCache(cache_size)

    def serve(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(path))
        server.listen(BACKLOG)
        log.info("warm sampler %d listening on %s", os.getpid(), path)
        while True:
            connection, _ = server.accept()
            with connection:
                self.answer(connection)

    def answer(self, connection: socket.socket) -> None:
        connection.settimeout(REQUEST_TIMEOUT_S)
        try:
            request = Lines(connection).read()
        except (OSError, ValueError) as error:  # silent or garbled: not a task of ours
            log.warning("warm sampler: dropped a connection without a job (%s)", error)
            return
        if request is None:
            return
        connection.settimeout(None)
        send(connection, {"accepted": True, "pid": os.getpid()})
        result = self.run(str(request["channel"]))
        try:
            send(connection, result)
        except OSError:  # the task gave up on us (fenced, killed): nothing left to tell
            log.warning("job %s: its task left before the result", request["job_id"])

    def run(self, channel: str) -> dict[str, str]:
        """One attempt, as `worker.rank.rank_main` runs it for a one-rank sampling job."""
        from worker.rank_inputs import checkpoint_cache

        timer = StageTimer()
        link = AgentLink(channel)
        try:
            ticket = JobTicket.from_json(link.call("ticket")[0]["ticket"])
        except Exception as exc:  # an agent gone already: nothing of the job to run
            link.close_quietly()
            return {"status": "lost", "error": f"the job's agent did not answer ({exc})"}
        reporter = JobReporter(link, ticket, 0)
        installed = checkpoint_cache.set(self.cache)
        try:
            result = self._sample(link, ticket, reporter, timer.lap)
        finally:
            checkpoint_cache.reset(installed)
        try:
            reporter.flush()
        except Exception as exc:  # as a rank whose last flush fails: the attempt ends with it
            result = _failure(exc, reporter)
        finally:
            reporter.close()
            link.close_quietly()
        timer.lap("flushed")
        log.info("job %s attempt %d: %s", ticket.job_id, ticket.attempt, timer)
        return result

    def _sample(
        self, link: AgentLink, ticket: JobTicket, reporter: JobReporter, lap: Callable[[str], None]
    ) -> dict[str, str]:
        from worker.rank import pick_device
        from worker.sampling import run_sampling

        try:
            spec = parse_spec(ticket.kind, ticket.spec)
            if not isinstance(spec, SampleSpec):
                raise ValueError(f"the warm sampler runs sampling jobs, not {ticket.kind!r} jobs")
            device = pick_device(spec.resources.device_type, 0)
            lap("job read")
            status = run_sampling(link, spec, device, reporter, lap)
        except Exception as exc:
            return _failure(exc, reporter)
        status, _, error = status.partition(": ")
        return {"status": status, "error": error}


class StageTimer:
    """Milliseconds between laps, named by the stage each ends: `job read 3 ms, ...`."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.laps: list[tuple[str, float]] = []

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.laps.append((stage, (now - self._last) * 1000))
        self._last = now

    def __str__(self) -> str:
        return ", ".join(f"{stage} {ms:.0f} ms" for stage, ms in self.laps)


def _failure(exc: Exception, reporter: JobReporter) -> dict[str, str]:
    """The machinery's fault (storage, database, network) loses the attempt; any other fails
    the job with its reason, as on the cold path."""
    from worker.rank import failure_message, is_infrastructure_fault

    message = failure_message(exc)
    reporter.log(f"rank 0 failed: {message}")
    # The traceback, which names the server's files, for the worker's log only (this
    # process writes to the worker's own output).
    log.warning(
        "job %s attempt %d failed: %s", reporter.job_id, reporter.attempt, message, exc_info=exc
    )
    return {"status": "lost" if is_infrastructure_fault(exc) else "failed", "error": message}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device-index", type=int, required=True)
    parser.add_argument("--worker-pid", type=int, required=True, help="the worker that owns it")
    parser.add_argument("--socket", type=Path, required=True, help="where to listen for jobs")
    parser.add_argument("--cache", type=int, default=4, help="checkpoints kept loaded")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: the cores)")
    args = parser.parse_args(argv)
    exit_with_parent(args.worker_pid)  # the worker's death ends this process group
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    WarmSampler(args.threads, args.cache).serve(args.socket)
    return 0


if __name__ == "__main__":
    sys.exit(main())
