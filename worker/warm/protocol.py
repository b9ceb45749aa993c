"""How the Celery task and a device's warm sampler talk: a Unix socket, one JSON object a line.

task -> sampler   {"job_id": ..., "attempt": n, "channel": path}   (the claimed attempt)
sampler -> task   {"accepted": true, "pid": n}                     (before it does anything)
sampler -> task   {"status": "succeeded" | "failed" | "lost" | "cancelled", "error": "..."}

A connection that closes before "accepted" ran nothing (the task may take the cold path); one
that closes after it without a status lost the attempt (the sampler died).
"""

from __future__ import annotations

import json
import socket
from typing import Any


def send(connection: socket.socket, message: dict[str, Any]) -> None:
    connection.sendall(json.dumps(message).encode() + b"\n")


class Lines:
    """Reads JSON lines from a socket; `read()` is None once the peer has closed it."""

    def __init__(self, connection: socket.socket) -> None:
        self.connection = connection
        self._buffer = b""

    def read(self) -> dict[str, Any] | None:
        """The next message; raises TimeoutError when the socket's timeout passes first."""
        while b"\n" not in self._buffer:
            chunk = self.connection.recv(65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        return message
