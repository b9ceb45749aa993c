"""The storage interface: put, get, list, delete, url."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
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


# What `put` takes in memory: bytes, or a view of them (the node agent's mapping of a sealed
# checkpoint file, worker/channel/sealed.py) stored without a copy. Either can be sent again
# after a failed try, which a stream cannot always be.
InMemory = bytes | bytearray | memoryview


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
