"""Streams against everyone else: one token opens many `Accept: text/event-stream` requests on
one job, and another user's listing and /healthz must still answer promptly.

A stream holds an API thread for up to api.live.STREAM_MAX_S; the embedded API has
cli.embedded.API_WORKERS x API_THREADS of them. Holding means either the streams are served
without starving the rest, or those past a limit are refused at once with 429 problem+json.
The streams are raw sockets, so that opening them costs the battery nothing and closing them
is abrupt, as a client that goes away is.
"""

from __future__ import annotations

import socket
import time
from urllib.parse import urlparse

from bench.hostile_cases import JOBS, Outcome, Target
from bench.hostile_http import PROBLEM_JSON, Answer

CATEGORY = "streams"
# A stream must be answered (its status line) within this; the others' requests within
# PROMPT_S while the streams are open.
STREAM_ANSWER_S = 2.0
PROMPT_S = 1.0
# How long the battery waits, after closing every stream, for the API to answer again.
RECOVERY_WAIT_S = 45.0


class OpenStream:
    """One `text/event-stream` request on a raw socket; `status` once its answer begins."""

    def __init__(self, target: Target, path: str) -> None:
        url = urlparse(target.base_url)
        self.sock = socket.create_connection((url.hostname or "127.0.0.1", url.port or 80))
        self.status: int | None = None
        self.content_type = ""
        self.sent = time.perf_counter()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {url.netloc}\r\nAccept: text/event-stream\r\n"
            f"Authorization: Bearer {target.tokens['alice']}\r\n\r\n".encode()
        )
        self._head = b""

    def wait_answer(self, deadline: float) -> None:
        """Read until the answer's headers are in, or the deadline passes."""
        while self.status is None and b"\r\n\r\n" not in self._head:
            left = deadline - time.perf_counter()
            if left <= 0:
                return
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(4096)
            except OSError:
                return
            if not chunk:
                return
            self._head += chunk
        lines = self._head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-type":
                self.content_type = value.strip()

    def close(self) -> None:
        self.sock.close()


def _streams_answered(streams: list[OpenStream], deadline: float) -> tuple[list[str], str]:
    for stream in streams:
        stream.wait_answer(deadline)
    served = sum(
        s.status == 200 and s.content_type.startswith("text/event-stream") for s in streams
    )
    limited = sum(s.status == 429 and s.content_type.startswith(PROBLEM_JSON) for s in streams)
    silent = sum(s.status is None for s in streams)
    other = len(streams) - served - limited - silent
    got = f"{served} served, {limited} refused with 429, {silent} unanswered, {other} other"
    reasons = []
    if silent:
        reasons.append(f"{silent} of {len(streams)} streams unanswered after {STREAM_ANSWER_S:g} s")
    if other:
        reasons.append(f"{other} answered neither 200 event-stream nor 429 problem+json")
    return reasons, got


def _prompt(name: str, answer: Answer, expected: int) -> Outcome:
    reasons = []
    if answer.status != expected:
        reasons.append(f"status {answer.status}, expected {expected}")
    if answer.seconds > PROMPT_S:
        reasons.append(f"took {answer.seconds:.2f} s, bound {PROMPT_S:g} s")
    return Outcome(CATEGORY, name, not reasons, reasons, answer.summary(), answer.seconds)


def run_streams(target: Target) -> tuple[list[Outcome], dict[str, float | None]]:
    """Open 16, then 24 streams from alice's token on her job, each time checking bob's
    listing and /healthz; close them all and time how long until both answer again."""
    job = target.ids["job"]
    outcomes: list[Outcome] = []
    streams: list[OpenStream] = []
    for count, path in ((16, f"{JOBS}/{job}/events"), (8, f"{JOBS}/{job}/logs")):
        began = time.perf_counter()
        fresh = [OpenStream(target, path) for _ in range(count)]
        streams += fresh
        reasons, got = _streams_answered(fresh, began + STREAM_ANSWER_S)
        total = len(streams)
        outcomes.append(
            Outcome(
                CATEGORY,
                f"{total} streams open: each served or refused within 2 s",
                not reasons,
                reasons,
                got,
                time.perf_counter() - began,
            )
        )
        bobs = target.request("GET", JOBS, user="bob", timeout=PROMPT_S * 5)
        outcomes.append(_prompt(f"{total} streams open: bob's GET /jobs within 1 s", bobs, 200))
        health = target.request("GET", "/healthz", user=None, timeout=PROMPT_S * 5)
        outcomes.append(_prompt(f"{total} streams open: GET /healthz within 1 s", health, 200))
        own = target.request("GET", f"{JOBS}/{job}", timeout=PROMPT_S * 5)
        outcomes.append(
            _prompt(f"{total} streams open: alice's own GET /jobs/<id> within 1 s", own, 200)
        )
    for stream in streams:
        stream.close()
    closed = time.perf_counter()
    recovered: float | None = None
    while time.perf_counter() - closed < RECOVERY_WAIT_S:
        health = target.request("GET", "/healthz", user=None, timeout=PROMPT_S)
        bobs = target.request("GET", JOBS, user="bob", timeout=PROMPT_S)
        if health.status == 200 and bobs.status == 200:
            recovered = time.perf_counter() - closed
            break
    reasons = (
        []
        if recovered is not None and recovered <= 5
        else [
            f"answering again {recovered:.1f} s after the streams closed (bound 5 s)"
            if recovered is not None
            else f"not answering {RECOVERY_WAIT_S:g} s after they closed"
        ]
    )
    outcomes.append(
        Outcome(
            CATEGORY,
            "24 streams closed by the client: the API answers within 5 s",
            not reasons,
            reasons,
            f"recovered after {recovered:.1f} s" if recovered is not None else "never",
            recovered or RECOVERY_WAIT_S,
        )
    )
    return outcomes, {"recovery_after_close_s": None if recovered is None else round(recovered, 2)}
