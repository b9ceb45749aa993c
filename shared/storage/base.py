"""The storage interface: put, get, list, delete, url."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import BinaryIO, Protocol


class StorageError(RuntimeError):
    """A storage operation failed; the message says which key and why (backend errors wrapped)."""


class ObjectNotFoundError(StorageError):
    """The key does not exist."""


class StorageUnavailableError(StorageError):
    """The store cannot be reached now (refused, timed out, 5xx): worth retrying, unlike a
    missing bucket or a refused credential, which no wait will fix."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    # The stored bytes' SHA-256 (hex) where `put` had it computed as they were stored: an
    # in-memory object of at most VERIFIED_PUT_MAX_BYTES. Not part of equality (a listing
    # has none).
    sha256: str | None = field(default=None, compare=False)
    # When the object was last written (aware, UTC), as a listing gives it; None from `put`.
    # The orphan collector (shared/orphans.py) spares objects younger than its grace period.
    modified: datetime | None = field(default=None, compare=False)
    # The store's version tag of the bytes (S3's ETag) as a listing gives it; None where the
    # store has none (a local folder). A node's shard cache keys its copies by it.
    etag: str | None = field(default=None, compare=False)


# What `put` takes in memory: bytes, or a view of them (the node agent's mapping of a sealed
# checkpoint file, worker/channel/sealed.py) stored without a copy. Either can be sent again
# after a failed try, which a stream cannot always be.
InMemory = bytes | bytearray | memoryview

# An in-memory object up to this size is stored in one request hashed as it is sent, and its
# SHA-256 comes back in ObjectInfo.sha256 (S3: the x-amz-checksum-sha256 the server checks
# the bytes it received against, in place of the CRC32 boto3 sends by default; so one pass
# over the bytes both proves the upload and gives the artifact's digest). Larger ones go up in
# parts, which S3 checksums only part by part; their callers hash them themselves.
VERIFIED_PUT_MAX_BYTES = 64 * 1024 * 1024


class Storage(Protocol):
    """Objects by key. Keys come from `shared.storage.keys`."""

    def put(self, key: str, data: InMemory | BinaryIO) -> ObjectInfo:
        """Store bytes or a binary file object under key, replacing what was there."""

    def get(self, key: str) -> bytes:
        """The whole object; raises ObjectNotFoundError."""

    def open(self, key: str) -> Iterator[bytes]:
        """The object as chunks, for streaming a large download; raises ObjectNotFoundError."""

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object whose key starts with prefix, sorted by key."""

    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""

    def url(self, key: str, expires_s: int = 3600) -> str | None:
        """A URL a client can download from directly (presigned for S3); None when the backend
        has no such URL and the API must stream the bytes itself."""

    def check(self) -> None:
        """Raise StorageError unless the store is reachable and writable (readiness probe)."""
