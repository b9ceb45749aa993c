"""The job process's side of its node agent: the one door out of the sandbox.

A rank (or the launcher, or the warm sampler for one job) holds no database, broker or
storage credentials: everything it reads of the service and everything it hands back goes
through an `AgentLink` to the Unix socket its agent opened for this attempt
(`GANFORGE_AGENT_SOCKET`). Calls are request and reply, one at a time per link (a lock keeps
the live-log thread's uploads from interleaving with the training thread's). The agent
answers a refusal with the kind of fault, which becomes the exception the rank's error
handling already knows: the job's own fault (`JobInputError`, the job fails with the
message), the attempt superseded (`AttemptFencedError`) or the machinery's
(`AgentUnavailableError`, the attempt is lost and requeued).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

from worker.channel.frames import ChannelClosed, read_header, read_payload, send_message
from worker.channel.sealed import FD_PAYLOAD_BYTES, HEADER_KEY, can_seal, sealed_file

SOCKET_VARIABLE = "GANFORGE_AGENT_SOCKET"
# The agent is trusted; this only keeps a confused reply from exhausting the rank's memory.
MAX_REPLY_BYTES = 1 << 40


class JobInputError(RuntimeError):
    """Something the job refers to is missing or unusable; the message says what."""


class AttemptFencedError(RuntimeError):
    """The job moved on to another attempt: this one may write nothing more."""


class AgentUnavailableError(ConnectionError):
    """The agent could not do it (its store or database stayed away past its retries) or is
    gone: the machinery's fault, so the attempt is lost and requeued."""


FAULTS: dict[str, type[Exception]] = {
    "user": JobInputError,
    "fenced": AttemptFencedError,
    "infrastructure": AgentUnavailableError,
}


class AgentLink:
    """Request and reply with the attempt's agent."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._connection: socket.socket | None = None
        self._lock = threading.Lock()
        # Told of each note the agent sends with a reply (a storage outage it waited through),
        # so the job's own log tells of it; the reporter sets it to its `log`.
        self.on_note: Callable[[str], None] | None = None

    @classmethod
    def from_environment(cls) -> AgentLink:
        path = os.environ.get(SOCKET_VARIABLE)
        if not path:
            raise AgentUnavailableError(f"{SOCKET_VARIABLE} is not set: no agent to talk to")
        return cls(path)

    def call(
        self, op: str, payload: bytes | Iterable[bytes] = b"", **args: Any
    ) -> tuple[dict[str, Any], bytes]:
        """Send one request; the reply's header and payload."""
        with self._lock:
            try:
                connection = self._connect()
                # The process that keeps the job's log asks for the agent's notes with each.
                notes = {"notes": True} if self.on_note is not None else {}
                header = {"op": op, **args, **notes}
                # A large payload in one buffer goes as a sealed memory file, not through
                # the socket (worker/channel/sealed.py).
                if (
                    isinstance(payload, (bytes, bytearray, memoryview))
                    and len(payload) >= FD_PAYLOAD_BYTES
                    and can_seal()
                ):
                    fd = sealed_file(payload)
                    try:
                        send_message(connection, {**header, HEADER_KEY: len(payload)}, b"", fd=fd)
                    finally:
                        os.close(fd)
                else:
                    send_message(connection, header, payload)
                reply = read_header(connection)
                data = read_payload(connection, MAX_REPLY_BYTES)
            except (OSError, ValueError) as error:
                self.close_quietly()
                if isinstance(error, ChannelClosed):
                    raise AgentUnavailableError(
                        f"the node agent closed the channel ({op})"
                    ) from None
                raise AgentUnavailableError(
                    f"the node agent is unreachable ({op}: {error})"
                ) from None
        for note in reply.get("notes", []):
            if self.on_note is not None:
                self.on_note(str(note))
        if not reply.get("ok"):
            fault = FAULTS.get(str(reply.get("fault")), AgentUnavailableError)
            raise fault(str(reply.get("error", "refused by the node agent")))
        return reply, data

    def close_quietly(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None

    def _connect(self) -> socket.socket:
        if self._connection is None:
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            connection.connect(self.path)
            self._connection = connection
        return self._connection
