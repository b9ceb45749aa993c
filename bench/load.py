"""Closed-loop HTTP load: N clients, each sending its next request as soon as the last answers,
for a fixed time; and the interleaving that runs two sides of a comparison in turns.

Clients are threads on raw `http.client` keep-alive connections (not `requests`, whose own
per-request cost would be a large share of a sub-millisecond answer on a 2-core machine). The
load generator shares the machine with the servers, so it costs both sides alike; the ratio
is the figure to read, not the absolute rate.
"""

from __future__ import annotations

import http.client
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from bench.lab import median, percentile

# Seconds a request may take before the client counts it failed: far above any answer here.
REQUEST_TIMEOUT_S = 30.0
# One turn of one side: long enough for hundreds of requests, short enough that several turns
# of each side interleave within a run, so a noisy neighbour hits both.
DEFAULT_TURN_S = 2.5


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes | None = None
    expect: int = 200


# Builds client i's next request (so each client can poll its own job, or name its own key).
RequestMaker = Callable[[int], Request]


@dataclass
class LoadTally:
    """Every latency (seconds) and the failures of one side, over all its turns."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    first_error: str | None = None
    server_cpu_s: float | None = None  # CPU of the server's processes in its turns, if given

    def summary(self) -> dict[str, Any]:
        done = len(self.latencies)
        return {
            "requests": done,
            "errors": self.errors,
            "seconds": round(self.seconds, 2),
            "per_second": round(done / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(median(self.latencies) * 1000, 2),
            "p99_ms": round(percentile(self.latencies, 99) * 1000, 2),
            "first_error": self.first_error,
            "server_cpu_ms_per_request": (
                round(self.server_cpu_s * 1000 / done, 3)
                if self.server_cpu_s is not None and done
                else None
            ),
        }


def tree_cpu_seconds(root: int) -> float:
    """User and system CPU seconds of process `root` and every process below it so far (from
    /proc): what a server spent, whatever else loads the machine, so the CPU per answered
    request compares two servers even where their rates are mostly the neighbours' noise."""
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        used[pid] = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    total, below = 0.0, {root}
    changed = True
    while changed:  # the tree is a few processes deep: gunicorn's master and its workers
        grown = below | {pid for pid, parent in parents.items() if parent in below}
        changed, below = grown != below, grown
    for pid in below:
        total += used.get(pid, 0.0)
    return total


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def run_turn(base_url: str, headers: dict[str, str], make: RequestMaker, clients: int,
             seconds: float, tally: LoadTally) -> None:  # fmt: skip
    """`clients` threads send requests back to back for `seconds`; results go to `tally`."""
    url = urlparse(base_url)
    deadline = time.perf_counter() + seconds
    lock = threading.Lock()

    def client(index: int) -> None:
        connection = http.client.HTTPConnection(
            url.hostname or "127.0.0.1", url.port, timeout=REQUEST_TIMEOUT_S
        )
        mine: list[float] = []
        errors, first_error = 0, None
        while time.perf_counter() < deadline:
            request = make(index)
            began = time.perf_counter()
            try:
                sent = {**headers, "Content-Type": "application/json"} if request.body else headers
                connection.request(request.method, request.path, body=request.body, headers=sent)
                response = connection.getresponse()
                payload = response.read()
                if response.status == request.expect:
                    mine.append(time.perf_counter() - began)
                    continue
                problem = f"{response.status} {payload[:200]!r}"
            except (OSError, http.client.HTTPException) as error:
                problem = repr(error)
                connection.close()
            errors += 1
            first_error = first_error or problem
        connection.close()
        with lock:
            tally.latencies.extend(mine)
            tally.errors += errors
            tally.first_error = tally.first_error or first_error

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tally.seconds += time.perf_counter() - began


def interleaved(
    sides: dict[str, tuple[str, dict[str, str], RequestMaker]],
    clients: int,
    seconds: float,
    turn_s: float = DEFAULT_TURN_S,
    server_pids: dict[str, int] | None = None,
) -> dict[str, LoadTally]:
    """Give each side `seconds` of load in turns of `turn_s`, alternating which goes first;
    sides maps a name to (base URL, headers, request maker). A side named in `server_pids`
    (its server's root process) also counts its server's CPU in its turns."""
    tallies = {name: LoadTally() for name in sides}
    turns = max(1, round(seconds / turn_s))
    order = list(sides)
    pids = server_pids or {}
    for turn in range(turns):
        for name in order if turn % 2 == 0 else reversed(order):
            base_url, headers, make = sides[name]
            before = tree_cpu_seconds(pids[name]) if name in pids else None
            run_turn(base_url, headers, make, clients, seconds / turns, tallies[name])
            if before is not None:
                spent = tree_cpu_seconds(pids[name]) - before
                tallies[name].server_cpu_s = (tallies[name].server_cpu_s or 0.0) + spent
    return tallies
