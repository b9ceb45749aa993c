"""The wire format between a job's processes and their node agent, and its bounds.

A message is a header frame (4-byte big-endian length, then a JSON object) followed by its
payload as chunk frames (4-byte length, then bytes), ended by an empty chunk; a message
without payload sends just the empty chunk. Chunks let a checkpoint of gigabytes stream
through without either side holding a second copy of it in a buffer, and let the receiver
stop reading the moment a payload passes its bound. Standard library only: both the
sandboxed job process and the agent import it.
"""

from __future__ import annotations

import json
import socket
import struct
from array import array
from collections.abc import Iterable
from typing import Any

LENGTH = struct.Struct(">I")
# A header names an operation and small arguments (a spec travels in a reply, not a request).
MAX_HEADER_BYTES = 1 << 20
# One chunk frame; a sender splits larger payloads.
CHUNK_BYTES = 4 << 20
MAX_CHUNK_BYTES = 8 << 20


class FrameError(ValueError):
    """The other side broke the format (a length past its bound, JSON that is not an object,
    a payload larger than allowed); the message says which, for the job's error."""


class ChannelClosed(ConnectionError):
    """The other side closed the connection."""


def send_message(
    connection: socket.socket,
    header: dict[str, Any],
    payload: bytes | Iterable[bytes] = b"",
    fd: int | None = None,
) -> None:
    """`fd`: a descriptor passed with the header (worker/channel/sealed.py)."""
    encoded = json.dumps(header, separators=(",", ":")).encode()
    if len(encoded) > MAX_HEADER_BYTES:
        raise FrameError(f"a header of {len(encoded):,} bytes is over {MAX_HEADER_BYTES:,}")
    if fd is None:
        connection.sendall(LENGTH.pack(len(encoded)) + encoded)
    else:  # the descriptor rides on the length prefix, which the receiver reads with recvmsg
        length = LENGTH.pack(len(encoded))
        sent = socket.send_fds(connection, [length], [fd])
        connection.sendall(length[sent:] + encoded)
    parts = [payload] if isinstance(payload, (bytes, bytearray, memoryview)) else payload
    for part in parts:
        view = memoryview(part)
        for start in range(0, len(view), CHUNK_BYTES):
            piece = view[start : start + CHUNK_BYTES]
            connection.sendall(LENGTH.pack(len(piece)))
            connection.sendall(piece)
    connection.sendall(LENGTH.pack(0))


def read_header(connection: socket.socket, fds: list[int] | None = None) -> dict[str, Any]:
    """The next header; given `fds`, descriptors passed with it are appended there (the
    caller owns and closes them), else any the other side sent are dropped by the kernel."""
    if fds is None:
        size = _read_length(connection, MAX_HEADER_BYTES, "header")
    else:
        size = _read_length_and_fds(connection, fds)
    try:
        header = json.loads(_read_exactly(connection, size))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FrameError(f"a header that is not JSON ({error})") from None
    if not isinstance(header, dict):
        raise FrameError("a header that is not a JSON object")
    return header


def read_payload(connection: socket.socket, max_bytes: int) -> bytes:
    """The whole payload: each chunk received straight into a buffer of its own, joined once
    (no copy per chunk on top of the join)."""
    chunks: list[bytearray] = []
    total = 0
    while True:
        size = _read_length(connection, MAX_CHUNK_BYTES, "chunk")
        if size == 0:
            return b"".join(chunks)
        total += size
        if total > max_bytes:
            raise FrameError(f"a payload of more than {max_bytes:,} bytes")
        chunk = bytearray(size)
        _receive_into(connection, memoryview(chunk))
        chunks.append(chunk)


def _read_length(connection: socket.socket, bound: int, what: str) -> int:
    (size,) = LENGTH.unpack(_read_exactly(connection, LENGTH.size))
    if size > bound:
        raise FrameError(f"a {what} frame of {size:,} bytes is over {bound:,}")
    return size


def _read_length_and_fds(connection: socket.socket, fds: list[int]) -> int:
    """A header's length, read with recvmsg so that a descriptor sent with it arrives (one
    at most: more are closed by the kernel and break the format)."""
    room = socket.CMSG_SPACE(array("i", [0]).itemsize)
    received = b""
    while len(received) < LENGTH.size:
        data, ancillary, flags, _ = connection.recvmsg(
            LENGTH.size - len(received), room, socket.MSG_CMSG_CLOEXEC
        )
        for level, kind, raw in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                passed = array("i")
                passed.frombytes(raw[: len(raw) - len(raw) % passed.itemsize])
                fds.extend(passed)
        if flags & socket.MSG_CTRUNC:
            raise FrameError("more than one descriptor with a message")
        if not data:
            raise ChannelClosed("the other side closed the channel")
        received += data
    (size,) = LENGTH.unpack(received)
    if size > MAX_HEADER_BYTES:
        raise FrameError(f"a header frame of {size:,} bytes is over {MAX_HEADER_BYTES:,}")
    return size


def _read_exactly(connection: socket.socket, size: int) -> bytes:
    buffer = bytearray(size)
    _receive_into(connection, memoryview(buffer))
    return bytes(buffer)


def _receive_into(connection: socket.socket, view: memoryview) -> None:
    filled = 0
    while filled < len(view):
        got = connection.recv_into(view[filled:])
        if got == 0:
            raise ChannelClosed("the other side closed the channel")
        filled += got
