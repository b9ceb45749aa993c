"""Another user's job polls while hundreds of event streams are asked for at once.

    python -m bench.streams [--streams 200] [--tokens 10] [--duration 30] [--clients 4]
                            [--rounds 3] [--json bench-streams.json]

ganforge's API as `ganforge api` runs it (gunicorn, gthread, 2 processes x GANFORGE_API_THREADS
threads) on PostgreSQL, Redis and moto S3 started for the run. `--tokens` users each have a
queued job (no scheduler runs, so their streams would stay open until api.live.STREAM_MAX_S);
another user polls `GET /api/v1/jobs/<id>` of their own job with `--clients` closed-loop
clients (bench/load.py). Each round has two turns of `duration / rounds / 2` seconds, in
alternating order:

- **without streams**: the other user polls;
- **with streams**: `--streams` streams (`Accept: text/event-stream`, each on its own
  connection) are asked for at once, spread over the tokens; those admitted are held open
  while the other user polls, then closed, and the turn ends once every stream's slot and
  lease are free again (how long that took is reported).

The figures: the other user's poll p50/p99 with streams open against without, side by side
from the same run; `/healthz` asked on a new connection every 0.2 s, as a load balancer
probes (the pollers keep their connections, and with them their process); the streams
admitted, refused with 429 (and how fast), and any other answer or none within
`--open-timeout`.
"""

from __future__ import annotations

import argparse
import http.client
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import redis
import requests
from sqlalchemy import select

from bench.api import SUBMIT_BODY
from bench.lab import (
    Lab,
    bench_token,
    given_or_own_lab,
    lab_settings,
    median,
    percentile,
    write_json,
)
from bench.load import LoadTally, Request, run_turn
from cli.embedded import API_WORKERS, ServiceProcesses
from shared.config import Settings
from shared.db import session_scope
from shared.models import ApiToken
from shared.users import hash_token

# Out of reach: the refusals measured are the streams' own, not the request rate's.
RATE_LIMIT = 1_000_000_000
# Seconds a stream request may wait for its answer's headers before it counts as unanswered.
OPEN_TIMEOUT_S = 10.0
# Seconds the closed streams' slots and leases may take to come back before the run fails:
# the API notices a closed connection between two polls of a stream (a second apart).
FREED_TIMEOUT_S = 30.0
# Seconds between the /healthz probes of a turn, and how long one may take (a load balancer's
# probe timeout) before it counts as not answered.
HEALTH_EVERY_S = 0.2
HEALTH_TIMEOUT_S = 5.0
# The goal: another user's polls keep their latency while the streams are held open.
GOAL_P99_RATIO = 2.0


@dataclass
class StreamTally:
    """What the stream requests of one turn got."""

    admitted: list[http.client.HTTPConnection] = field(default_factory=list)
    refused_s: list[float] = field(default_factory=list)
    other: int = 0
    unanswered: int = 0
    first_other: str | None = None


def open_streams(base_url: str, paths: list[tuple[str, str]], timeout_s: float) -> StreamTally:
    """Ask for a stream on each (path, token) at once, each on its own connection; keep the
    admitted connections open (their bodies unread: the server's messages are a few bytes)."""
    url = urlparse(base_url)
    tally = StreamTally()
    lock = threading.Lock()

    def ask(path_token: tuple[str, str]) -> None:
        path, token = path_token
        connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port,
                                                timeout=timeout_s)  # fmt: skip
        began = time.perf_counter()
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
        except (OSError, http.client.HTTPException):
            connection.close()
            with lock:
                tally.unanswered += 1
            return
        if response.status == 200:
            with lock:
                tally.admitted.append(connection)
            return
        body = response.read()
        connection.close()
        with lock:
            if response.status == 429:
                tally.refused_s.append(time.perf_counter() - began)
            else:
                tally.other += 1
                tally.first_other = tally.first_other or f"{response.status} {body[:200]!r}"

    with ThreadPoolExecutor(max_workers=len(paths)) as pool:
        list(pool.map(ask, paths))
    return tally


@contextmanager
def probing_health(base_url: str, tally: LoadTally) -> Iterator[None]:
    """While the block runs, ask for /healthz every HEALTH_EVERY_S on a new connection each
    time, as a load balancer does: a process whose every thread is taken does not answer."""
    stop = threading.Event()

    def probe() -> None:
        began_turn = time.perf_counter()
        while not stop.is_set():
            began = time.perf_counter()
            try:
                answer = requests.get(f"{base_url}/healthz", timeout=HEALTH_TIMEOUT_S)
                if answer.status_code == 200:
                    tally.latencies.append(time.perf_counter() - began)
                else:
                    tally.errors += 1
            except requests.RequestException as error:
                tally.errors += 1
                tally.first_error = tally.first_error or repr(error)
            stop.wait(HEALTH_EVERY_S)
        tally.seconds += time.perf_counter() - began_turn

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        yield
    finally:
        stop.set()
        prober.join()


def leases_held(client: redis.Redis, token_ids: list[str]) -> int:
    """Stream leases of these tokens that have not run out (api/stream_slots.TokenLeases)."""
    now_s, now_us = client.time()
    now_ms = now_s * 1000 + now_us // 1000
    return sum(int(client.zcount(f"ganforge:streams:{t}", f"({now_ms}", "+inf")) for t in token_ids)


def measure(
    streams: int,
    tokens: int,
    duration_s: float,
    clients: int,
    rounds: int,
    open_timeout_s: float = OPEN_TIMEOUT_S,
    lab: Lab | None = None,
) -> dict[str, Any]:
    """Start the lab and the API, then run `rounds` rounds of both turns."""
    turn_s = duration_s / rounds / 2
    with tempfile.TemporaryDirectory(prefix="ganforge-bench-streams-") as scratch:
        home = Path(scratch)
        with (
            given_or_own_lab(lab) as lab,
            lab_settings(lab, home, GANFORGE_RATE_LIMIT=str(RATE_LIMIT)) as settings,
            ServiceProcesses(settings, home / "logs") as processes,
        ):
            processes.start(("api",))
            processes.wait_ready()
            poller = bench_token(settings, "poller")
            polled = _submit(settings, poller)
            streamers = [bench_token(settings, f"streamer-{i}") for i in range(tokens)]
            jobs = [_submit(settings, token) for token in streamers]
            token_ids = [_token_id(settings, token) for token in streamers]
            paths = [
                (f"/api/v1/jobs/{jobs[i % tokens]}/events", streamers[i % tokens])
                for i in range(streams)
            ]
            broker = redis.Redis.from_url(settings.broker_url)
            headers = {"Authorization": f"Bearer {poller}"}
            poll = Request("GET", f"/api/v1/jobs/{polled}")
            # A short warm-up (connections, imports, plans) first.
            run_turn(settings.api_url, headers, lambda _: poll, clients, 1.0, LoadTally())
            sides = {"without": LoadTally(), "with": LoadTally()}
            health = {"without": LoadTally(), "with": LoadTally()}

            def polling(side: str) -> None:
                with probing_health(settings.api_url, health[side]):
                    run_turn(settings.api_url, headers, lambda _: poll, clients, turn_s,
                             sides[side])  # fmt: skip

            turns: list[dict[str, Any]] = []
            refused_s: list[float] = []
            for number in range(rounds):
                order = ["without", "with"] if number % 2 == 0 else ["with", "without"]
                for side in order:
                    if side == "without":
                        polling(side)
                        continue
                    opened = open_streams(settings.api_url, paths, open_timeout_s)
                    polling(side)
                    freed_s = _close(opened, broker, token_ids)
                    refused_s += opened.refused_s
                    turns.append({
                        "admitted": len(opened.admitted),
                        "refused_429": len(opened.refused_s),
                        "other": opened.other,
                        "unanswered": opened.unanswered,
                        "first_other": opened.first_other,
                        "freed_s": freed_s,
                    })  # fmt: skip
                    _print_turn(number, turns[-1])
    return _results(settings, streams, tokens, duration_s, clients, rounds, sides, health,
                    turns, refused_s)  # fmt: skip


def _results(
    settings: Settings,
    streams: int,
    tokens: int,
    duration_s: float,
    clients: int,
    rounds: int,
    sides: dict[str, LoadTally],
    health: dict[str, LoadTally],
    turns: list[dict[str, Any]],
    refused_s: list[float],
) -> dict[str, Any]:
    polls: dict[str, Any] = {side: tally.summary() for side, tally in sides.items()}
    without, with_ = polls["without"], polls["with"]
    p50_ratio = with_["p50_ms"] / without["p50_ms"] if without["p50_ms"] else 0.0
    p99_ratio = with_["p99_ms"] / without["p99_ms"] if without["p99_ms"] else 0.0
    probes = {side: tally.summary() for side, tally in health.items()}
    answered = all(f["errors"] == 0 for f in [without, with_, *probes.values()])
    polls.update({"p50_ratio": round(p50_ratio, 2), "p99_ratio": round(p99_ratio, 2)})
    print(
        f"other user's polls, {clients} clients: without streams p50 {without['p50_ms']:.1f} ms"
        f" p99 {without['p99_ms']:.1f} ms ({without['errors']} errors); with streams p50"
        f" {with_['p50_ms']:.1f} ms p99 {with_['p99_ms']:.1f} ms ({with_['errors']} errors);"
        f" ratio p50 {p50_ratio:.2f}x p99 {p99_ratio:.2f}x",
        flush=True,
    )
    for side, figures in probes.items():
        print(
            f"/healthz on a new connection, {side} streams: {figures['requests']} answered,"
            f" p50 {figures['p50_ms']:.1f} ms p99 {figures['p99_ms']:.1f} ms,"
            f" {figures['errors']} not within {HEALTH_TIMEOUT_S:g} s",
            flush=True,
        )
    return {
        "streams": streams,
        "tokens": tokens,
        "clients": clients,
        "duration_s": duration_s,
        "rounds": rounds,
        "bounds": {
            "api_processes": API_WORKERS,
            "api_threads": settings.api_threads,
            "streams_per_process": settings.streams_per_process,
            "streams_per_token": settings.streams_per_token,
        },
        "polls": polls,
        "healthz": {side: tally.summary() for side, tally in health.items()},
        "turns": turns,
        "admitted": sum(turn["admitted"] for turn in turns),
        "refused_429": sum(turn["refused_429"] for turn in turns),
        "refused_ms": {
            "p50": round(median(refused_s) * 1000, 1),
            "p99": round(percentile(refused_s, 99) * 1000, 1),
        },
        "goal": {
            "polls_answered_and_p99_ratio_at_most": GOAL_P99_RATIO,
            "met": answered and p99_ratio <= GOAL_P99_RATIO,
        },
    }


def _close(opened: StreamTally, broker: redis.Redis, token_ids: list[str]) -> float:
    """Close the admitted streams; seconds until their leases (given back with their process
    slots) are all free again."""
    began = time.perf_counter()
    for connection in opened.admitted:
        connection.close()
    while leases_held(broker, token_ids):
        if time.perf_counter() - began > FREED_TIMEOUT_S:
            raise TimeoutError(f"closed streams still hold leases after {FREED_TIMEOUT_S:.0f} s")
        time.sleep(0.05)
    # The process slots come back just before the leases; a moment for the threads to finish.
    time.sleep(0.2)
    return round(time.perf_counter() - began, 2)


def _submit(settings: Settings, token: str) -> str:
    answer = requests.post(
        f"{settings.api_url}/api/v1/jobs",
        json=SUBMIT_BODY,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    answer.raise_for_status()
    return str(answer.json()["id"])


def _token_id(settings: Settings, token: str) -> str:
    with session_scope(settings.database_url) as session:
        found = session.scalar(select(ApiToken.id).where(ApiToken.token_hash == hash_token(token)))
    assert found is not None
    return found


def _print_turn(number: int, turn: dict[str, Any]) -> None:
    print(
        f"round {number + 1}: {turn['admitted']} streams admitted, {turn['refused_429']} refused"
        f" (429), {turn['other']} other, {turn['unanswered']} unanswered; slots free"
        f" {turn['freed_s']:.2f} s after closing",
        flush=True,
    )


def main(argv: list[str] | None = None, lab: Lab | None = None) -> dict[str, Any]:
    """Run from the command line; `lab` reuses running servers (the smoke tests' own)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200, help="streams asked for at once")
    parser.add_argument("--tokens", type=int, default=10, help="users the streams come from")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of polling in all")
    parser.add_argument("--clients", type=int, default=4, help="the other user's pollers")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--open-timeout", type=float, default=OPEN_TIMEOUT_S)
    parser.add_argument("--json", type=Path, default=Path("bench-streams.json"))
    args = parser.parse_args(argv)
    print(
        f"{args.streams} streams from {args.tokens} tokens, {args.clients} pollers,"
        f" {args.rounds} rounds, {args.duration:g} s of polling",
        flush=True,
    )
    results = measure(args.streams, args.tokens, args.duration, args.clients, args.rounds,
                      args.open_timeout, lab)  # fmt: skip
    return write_json(args.json, "streams", results)


if __name__ == "__main__":
    main()
