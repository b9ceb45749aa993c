"""A node's cache of unpacked code bundles: each bundle is fetched from the store once per node,
checked, and unpacked into a folder the node's jobs import from.

Layout under the cache folder (`$GANFORGE_HOME/code-cache/<node>/` by default):

    <sha256>/tree/    the unpacked bundle, what a job puts on sys.path (dirs 0755, files 0644)
    <sha256>/bytes    its unpacked size, for the cache's bound
    <sha256>/lock     taken shared (flock) while a job uses the bundle, exclusive to evict it

A fetch downloads into a temporary folder beside the entries, checks the SHA-256 of the bytes
against the id, unpacks with the checks the API made at upload (shared/codebundles/archive.py:
a store's object is not trusted to be what was checked), and renames the folder into place: a
rename is atomic, so two processes fetching at once end with one copy (the loser's rename
fails and it uses the winner's). Past GANFORGE_CODE_CACHE_MB, the least recently used entries
are removed, never one in use: the one this call returns, nor any another process holds (its
lock). The tree is readable by all and written by nobody else: the jobs that import it run
as an unprivileged account, and this process's user owns every file (modes from the archive
are not kept).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from shared.codebundles.archive import MAX_PACKED_BYTES, ArchiveError, unpack
from shared.config import Settings
from shared.storage import Storage, StorageError
from shared.storage.keys import CODE_FORMATS, KeyError_, code_key, code_prefix
from worker.node import node_name

log = logging.getLogger(__name__)

CACHE_FOLDER = "code-cache"
TREE, SIZE_FILE, LOCK_FILE = "tree", "bytes", "lock"
_TEMP_PREFIX, _TRASH_PREFIX = ".tmp-", ".trash-"
# Tries to lock an entry that another process evicts between our finding and locking it.
_TRIES = 3


def node_cache_folder(settings: Settings) -> Path:
    """Where this node keeps unpacked bundles (its fork server may read beneath it)."""
    return settings.home / CACHE_FOLDER / node_name(settings)


class BundleFetchError(RuntimeError):
    """A bundle could not be had: not stored, not the bytes its id says, or unsafe."""


class BundleCache:
    """Unpacked code bundles on this node, by SHA-256, bounded by `max_bytes` unpacked."""

    def __init__(self, store: Storage, folder: Path, max_bytes: int) -> None:
        self.store, self.folder, self.max_bytes = store, folder, max_bytes

    @classmethod
    def for_node(cls, settings: Settings, store: Storage) -> BundleCache:
        return cls(store, node_cache_folder(settings), settings.code_cache_mb * 1024 * 1024)

    def fetch(self, sha256: str) -> Path:
        """The bundle's unpacked folder, fetched if this node does not hold it yet. Kept from
        eviction only during this call: use `use()` around the code that imports from it."""
        with self.use(sha256) as tree:
            return tree

    @contextlib.contextmanager
    def use(self, sha256: str) -> Iterator[Path]:
        """The bundle's unpacked folder, which no eviction removes while the block runs."""
        entry, lock = self._acquire(sha256)
        try:
            yield entry / TREE
        finally:
            os.close(lock)

    def _acquire(self, sha256: str) -> tuple[Path, int]:
        try:
            code_prefix(sha256)
        except KeyError_ as exc:
            raise BundleFetchError(str(exc)) from None
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o755)  # the jobs' account walks through it to the trees
        entry = self.folder / sha256
        for _ in range(_TRIES):
            if not entry.is_dir():
                self._fetch_into_place(sha256)
            lock = _locked(entry, fcntl.LOCK_SH)
            if lock is None:  # evicted between the look and the lock: fetch it again
                continue
            os.utime(entry)  # its last use, which eviction orders by
            self._evict(keep=sha256)
            return entry, lock
        raise BundleFetchError(f"code bundle {sha256}: removed from the cache as it was fetched")

    def _fetch_into_place(self, sha256: str) -> None:
        temp = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX, dir=self.folder))
        try:
            packed = temp / "bundle"
            fmt = self._download(sha256, packed)
            tree = temp / TREE
            tree.mkdir()
            try:
                size = unpack(packed, fmt, tree, f"code bundle {sha256}")
            except ArchiveError as exc:
                raise BundleFetchError(str(exc)) from None
            packed.unlink()
            (temp / SIZE_FILE).write_text(str(size))
            (temp / LOCK_FILE).touch()
            os.chmod(temp, 0o755)  # mkdtemp makes it 0700
            try:
                temp.rename(self.folder / sha256)
            except OSError:
                if not (self.folder / sha256).is_dir():
                    raise
                log.info("code bundle %s: another process unpacked it first", sha256)
        finally:
            shutil.rmtree(temp, ignore_errors=True)

    def _download(self, sha256: str, target: Path) -> str:
        """Stream the bundle's archive to `target`, checking its size and SHA-256; its format."""
        stored = {info.key for info in self.store.list(code_prefix(sha256))}
        fmt = next((f for f in CODE_FORMATS if code_key(sha256, f) in stored), None)
        if fmt is None:
            raise BundleFetchError(f"code bundle {sha256} is not stored (deleted?)")
        digest, size = hashlib.sha256(), 0
        try:
            with target.open("wb") as out:
                for chunk in self.store.open(code_key(sha256, fmt)):
                    size += len(chunk)
                    if size > MAX_PACKED_BYTES:
                        raise BundleFetchError(
                            f"code bundle {sha256}: the stored object is over "
                            f"{MAX_PACKED_BYTES} bytes, larger than any upload"
                        )
                    digest.update(chunk)
                    out.write(chunk)
        except StorageError as exc:
            raise BundleFetchError(f"code bundle {sha256}: {exc}") from exc
        if digest.hexdigest() != sha256:
            raise BundleFetchError(
                f"code bundle {sha256}: the stored bytes have SHA-256 {digest.hexdigest()}; "
                "not used"
            )
        return fmt

    def _evict(self, keep: str) -> None:
        """Remove the least recently used entries until the cache fits its bound, skipping
        `keep` and every entry a process holds."""
        entries: list[tuple[float, int, Path]] = []
        for child in self.folder.iterdir():
            if child.name.startswith(_TRASH_PREFIX):  # an eviction interrupted mid-way
                shutil.rmtree(child, ignore_errors=True)
                continue
            if child.name.startswith(_TEMP_PREFIX):
                continue
            try:
                size = int((child / SIZE_FILE).read_text())
                entries.append((child.stat().st_mtime, size, child))
            except (OSError, ValueError):
                continue  # removed meanwhile, or not ours
        total = sum(size for _, size, _ in entries)
        for _, size, entry in sorted(entries):
            if total <= self.max_bytes:
                return
            if entry.name != keep and _remove(entry):
                total -= size
                log.info("code bundle %s: evicted from the node's cache", entry.name)


def _locked(entry: Path, how: int) -> int | None:
    """A descriptor of the entry's lock file, locked `how`; None when the entry is gone or
    (non-blocking) the lock is held elsewhere. The lock file is checked, once locked, to
    still be the entry's: an eviction renames the entry away before it unlocks."""
    try:
        lock = os.open(entry / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(lock, how)
        if os.stat(entry / LOCK_FILE).st_ino == os.fstat(lock).st_ino:
            return lock
    except (BlockingIOError, FileNotFoundError):
        pass
    os.close(lock)
    return None


def _remove(entry: Path) -> bool:
    """Remove an entry no process holds: renamed away under its exclusive lock (so no
    reader finds half of it), then deleted. False when it is in use."""
    lock = _locked(entry, fcntl.LOCK_EX | fcntl.LOCK_NB)
    if lock is None:
        return False
    trash = entry.with_name(_TRASH_PREFIX + secrets.token_hex(6))
    try:
        entry.rename(trash)
    finally:
        os.close(lock)
    shutil.rmtree(trash, ignore_errors=True)
    return True
