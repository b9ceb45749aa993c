"""The storage interface: put, get, list, delete, url."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol
from urllib.parse import unquote, urlparse

from shared.config import Settings


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


class Storage(Protocol):
    """Objects by key. Keys come from `shared.storage.keys`."""

    def put(self, key: str, data: bytes | BinaryIO) -> ObjectInfo:
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


def open_storage(settings: Settings, *, patient: bool = False) -> Storage:
    """The backend GANFORGE_STORAGE_URL names: s3://bucket/prefix or file:///path.

    `patient` (workers) rides out a store that is briefly unreachable, retrying for
    GANFORGE_STORAGE_RETRY_S; the API is not patient: it answers 503 at once and lets its
    client retry, rather than hold a request thread for minutes."""
    store = _open_backend(settings)
    if patient and settings.storage_retry_s > 0:
        from shared.storage.retrying import RetryingStorage

        return RetryingStorage(store, settings.storage_retry_s)
    return store


def _open_backend(settings: Settings) -> Storage:
    parsed = urlparse(settings.storage_url)
    if parsed.scheme == "s3":
        from shared.storage.s3 import S3Storage

        return S3Storage(
            bucket=parsed.netloc,
            prefix=parsed.path.strip("/"),
            endpoint_url=settings.s3_endpoint_url,
            public_endpoint_url=settings.s3_public_endpoint_url,
        )
    from shared.storage.local import LocalStorage

    # Path.as_uri() percent-encodes (a space becomes %20), so decode back to the folder name.
    return LocalStorage(unquote(parsed.path))
