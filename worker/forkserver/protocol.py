"""How a supervisor and the node's fork server talk: one Unix SOCK_SEQPACKET connection per
attempt, one JSON object per message (a packet keeps message bounds and carries descriptors).

    supervisor -> server  {"argv": [...], "env": {...}, "cwd": path, "plan": SandboxPlan JSON}
                          with one descriptor: the attempt's output file (stdout and stderr)
    server -> supervisor  {"pid": n}     the launcher is forked; it leads its own session
    server -> supervisor  {"exit": code} it ended; code as Popen's returncode (-N: signal N)

A supervisor whose connection closes before "exit" is gone: the server kills the launcher's
process group at once, so nothing outlives the process that watched it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Sequence
from typing import Any

# A request holds the attempt's environment and sandbox plan: a few KB. Bigger is refused.
MAX_MESSAGE_BYTES = 256 * 1024
SOCKET_NAME = "forkserver.sock"


class ProtocolError(ValueError):
    """A message that is not one of ours: too big, not JSON, or with descriptors unasked for."""


def send(connection: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    data = json.dumps(message, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"a message of {len(data):,} bytes is over {MAX_MESSAGE_BYTES:,}")
    if fds:
        socket.send_fds(connection, [data], list(fds))
    else:
        connection.send(data)


def receive(connection: socket.socket, max_fds: int = 0) -> tuple[dict[str, Any] | None, list[int]]:
    """The next message and the descriptors that came with it; (None, []) once the peer has
    closed the connection. ProtocolError (its descriptors closed) for anything else."""
    data, fds, flags, _ = socket.recv_fds(connection, MAX_MESSAGE_BYTES, max(max_fds, 1))
    try:
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            raise ProtocolError("a message or its descriptors were cut short")
        if len(fds) > max_fds:
            raise ProtocolError(f"{len(fds)} descriptors where at most {max_fds} are taken")
        if not data:
            return None, []
        message = json.loads(data)
        if not isinstance(message, dict):
            raise ProtocolError("a message must be a JSON object")
    except (ProtocolError, ValueError):
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        raise
    return message, fds
