"""Objects as files under one folder: the backend of the embedded (single-machine) mode.

A key `jobs/<id>/log.txt` is the file `<root>/jobs/<id>/log.txt`. Writes go to a temporary file
beside the target and are renamed over it, so a reader (or a crash) never sees half an object.
"""

from __future__ import annotations

import builtins
import hashlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from shared.storage.base import (
    VERIFIED_PUT_MAX_BYTES,
    InMemory,
    ObjectInfo,
    ObjectNotFoundError,
    StorageError,
)

# Read size for streaming downloads: large enough that a 100 MB checkpoint is a hundred reads,
# small enough that many concurrent downloads do not hold much memory.
CHUNK_SIZE = 1024 * 1024

# Temporary files start with this, so `list` can skip writes still in flight (and leftovers of
# a crash mid-write). Keys from `shared.storage.keys` never start with a dot.
_TEMP_PREFIX = ".ganforge-tmp-"


class LocalStorage:
    """The `Storage` interface on a local folder; `url()` is None, so the API streams bytes."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def put(self, key: str, data: InMemory | BinaryIO) -> ObjectInfo:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            size = _write_atomically(path, data)
        except OSError as e:
            raise StorageError(f"cannot write {key!r} under {self.root}: {e}") from e
        sha256 = None
        if isinstance(data, bytes | bytearray | memoryview) and size <= VERIFIED_PUT_MAX_BYTES:
            sha256 = hashlib.sha256(data).hexdigest()  # as S3Storage returns one
        return ObjectInfo(key=key, size=size, sha256=sha256)

    def get(self, key: str) -> bytes:
        with self._open_file(key) as f:
            return f.read()

    def open(self, key: str) -> Iterator[bytes]:
        # The file is opened here, not in the generator, so a missing key raises at the call
        # (before an HTTP response has started), not at the first chunk.
        return _chunks(self._open_file(key))

    def list(self, prefix: str) -> builtins.list[ObjectInfo]:
        # Walk only the deepest folder the prefix names in full ("jobs/ab" walks "jobs/").
        folder = prefix.rpartition("/")[0]
        start = self._path(folder) if folder else self.root
        found: builtins.list[ObjectInfo] = []
        for dirpath, _dirnames, filenames in os.walk(start):
            for name in filenames:
                path = Path(dirpath, name)
                key = path.relative_to(self.root).as_posix()
                if name.startswith(_TEMP_PREFIX) or not key.startswith(prefix):
                    continue
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue  # deleted while we walked
                modified = datetime.fromtimestamp(stat.st_mtime, timezone.utc)
                found.append(ObjectInfo(key=key, size=stat.st_size, modified=modified))
        return sorted(found, key=lambda info: info.key)

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as e:
            raise StorageError(f"cannot delete {key!r} under {self.root}: {e}") from e

    def url(self, key: str, expires_s: int = 3600) -> str | None:
        return None

    def check(self) -> None:
        """Create the root if needed and prove it is writable by writing a probe file."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=_TEMP_PREFIX):
                pass
        except OSError as e:
            raise StorageError(f"artifact folder {self.root} is not writable: {e}") from e

    def _path(self, key: str) -> Path:
        """The file of key; StorageError for keys that could name a file outside the root."""
        parts = key.split("/")
        if (
            not key
            or key.startswith("/")
            or "\\" in key
            or "\0" in key
            or any(part in ("", ".", "..") for part in parts)
        ):
            raise StorageError(f"not a valid storage key: {key!r}")
        path = self.root.joinpath(*parts)
        # A symlink inside the root could still point out of it.
        if not path.resolve().is_relative_to(self.root):
            raise StorageError(f"key {key!r} resolves outside {self.root}")
        return path

    def _open_file(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(f"no object {key!r} under {self.root}") from None
        except OSError as e:
            raise StorageError(f"cannot read {key!r} under {self.root}: {e}") from e


def _write_atomically(path: Path, data: InMemory | BinaryIO) -> int:
    """Write data to path via a synced temporary file and a rename; return the size written."""
    # Not tempfile.mkstemp: its files are private (0600) and would stay so after the rename;
    # os.open with 0o666 gives the permissions any other file would get under the umask.
    temp_name = path.parent / f"{_TEMP_PREFIX}{secrets.token_hex(8)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(temp_name, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, bytes | bytearray | memoryview):
                f.write(data)
            else:
                shutil.copyfileobj(data, f, CHUNK_SIZE)
            size = f.tell()
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp_name, path)
    except BaseException:
        temp_name.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return size


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable; folders cannot be opened for syncing on Windows."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    with f:
        while chunk := f.read(CHUNK_SIZE):
            yield chunk
