"""Large payloads handed to the agent as a sealed memory file instead of through the socket.

A checkpoint of tens of megabytes sent in chunk frames is copied four times (into the
socket, out of it, joined, then read again for the upload): 47 ms of a 32 MiB checkpoint's
store, a fifth of the upload itself. Instead the sender writes it once into a `memfd`
(25 ms), seals it against writing, growing and shrinking, and passes the descriptor with the
message's header (SCM_RIGHTS); the agent maps it read-only and uploads from the mapping.

The agent does not trust the sender, so it takes a descriptor only if it is what this
module makes: a regular file of exactly the announced size, within the upload bound, whose
seals forbid any change (only memfds carry seals, and sealed they cannot change under the
agent while it hashes and uploads them). Anything else breaks the protocol. Standard
library only, Linux only: where `memfd_create` is missing the sender uses chunk frames.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import stat

from worker.channel.frames import FrameError

# Smaller payloads go through the socket: a memfd costs a few system calls and a mapping.
FD_PAYLOAD_BYTES = 1 << 20
SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
# The header's key announcing a sealed payload, with its size.
HEADER_KEY = "payload_fd"


def can_seal() -> bool:
    return hasattr(os, "memfd_create")


def sealed_file(payload: bytes | bytearray | memoryview) -> int:
    """A memfd holding `payload`, sealed; the caller closes it once sent."""
    fd = os.memfd_create("ganforge-payload", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view, written = memoryview(payload).cast("B"), 0
        while written < len(view):
            written += os.write(fd, view[written:])
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS | fcntl.F_SEAL_SEAL)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_sealed(fds: list[int], size: object, max_bytes: int) -> mmap.mmap:
    """The payload a sender passed as a sealed file, mapped read-only; FrameError when it
    is not one descriptor of a sealed regular file of `size` bytes, at most `max_bytes`.
    Closes every descriptor in `fds` either way."""
    try:
        if len(fds) != 1:
            raise FrameError(f"{len(fds)} descriptors with a message, not 1")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= max_bytes:
            raise FrameError(f"{HEADER_KEY}: a size from 1 to {max_bytes:,} bytes")
        (fd,) = fds
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode) or status.st_size != size:
            raise FrameError(f"{HEADER_KEY}: not a file of {size:,} bytes")
        try:
            seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        except OSError:
            seals = 0
        if seals & SEALS != SEALS:
            raise FrameError(f"{HEADER_KEY}: a file that is not sealed against change")
        # Populated at once: faulting a shared memory file in page by page as the upload
        # reads it took 56 ms for 32 MiB, mapping it populated 8 ms.
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        return mmap.mmap(fd, size, flags=flags, prot=mmap.PROT_READ)
    finally:
        for fd in fds:
            os.close(fd)
