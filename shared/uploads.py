"""Writing an upload (a dataset, a code bundle) to a scratch file as it arrives: its size and
SHA-256 counted on the bytes themselves, and refused the moment it passes its bound."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import IO

CHUNK_BYTES = 1024 * 1024


def copy_and_hash(
    stream: IO[bytes], path: Path, max_bytes: int, too_large: Callable[[], Exception]
) -> tuple[int, str]:
    """Copy `stream` to `path`; (size, sha256 hex). Raises `too_large()` past `max_bytes`."""
    digest, size = hashlib.sha256(), 0
    with path.open("wb") as out:
        while chunk := stream.read(CHUNK_BYTES):
            size += len(chunk)
            if size > max_bytes:
                raise too_large()
            digest.update(chunk)
            out.write(chunk)
    return size, digest.hexdigest()
