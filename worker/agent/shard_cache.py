"""A node's bounded cache of dataset shards: each stored shard is fetched once per node and
handed to every attempt that trains on it as a hard link in the attempt's inputs folder, so
a second job on the same dataset fetches nothing, and the job still sees only its own
folder and holds no storage key.

Layout under the cache folder (`$GANFORGE_HOME/shard-cache/<node>/`, beside the work root,
which is emptied at every worker start, so the cache outlives a restart):

    <digest>         one stored object's bytes (mode 0444), named by the SHA-256 of its key,
                     size and version (ETag, last-modified): a shard rewritten under the
                     same key is a new entry, never the old bytes
    pins/<token>     the digests one attempt uses, one a line; its agent holds the file
                     locked shared (flock) until the attempt ends
    .lock            taken exclusive while pins are written and while eviction decides
    .tmp-<token>     a fill in progress

A fill streams into a temporary name, checks the size the listing gave and the SHA-256 the
dataset's index recorded, and hard-links it to
its digest name (a link never replaces: two attempts filling one shard at once end with one
copy, the loser's bytes dropped). Past `max_bytes`, the least recently used entries go
first, never one that a live pin names; a pin whose agent died (its lock free) is removed.
Pins, not a lock per entry, so an attempt on ten thousand shards holds one descriptor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from shared.config import Settings
from shared.storage import Storage, StorageError
from shared.storage.base import ObjectInfo
from worker.agent.downloads import write_hashed
from worker.node import node_name

log = logging.getLogger(__name__)

CACHE_FOLDER = "shard-cache"
PINS, LOCK_FILE, TEMP_PREFIX = "pins", ".lock", ".tmp-"
_ENTRY_NAME = re.compile(r"^[0-9a-f]{64}$")
# A fill's temporary file untouched this long belongs to a process that died mid-fill (a
# live fill writes every chunk); eviction removes it.
STALE_FILL_S = 3600.0


class ShardCacheError(StorageError):
    """A shard could not be had whole and as written (the store gave fewer or more bytes than
    it listed, or bytes whose SHA-256 is not the index's)."""


@dataclass
class CacheUse:
    """What one `provide` did: entries found and fetched, bytes fetched, entries evicted."""

    hits: int = 0
    misses: int = 0
    fetched_bytes: int = 0
    evicted: int = 0
    evicted_bytes: int = 0

    def add(self, other: CacheUse) -> None:
        for counted in dataclasses.fields(self):
            name = counted.name
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def line(self) -> str:
        return (
            f"{self.hits} file(s) from the node's shard cache, {self.misses} fetched "
            f"({self.fetched_bytes / 1e6:,.1f} MB), {self.evicted} evicted "
            f"({self.evicted_bytes / 1e6:,.1f} MB)"
        )


def node_shard_folder(settings: Settings) -> Path:
    """Where this node keeps its shards (on the same disk as the work root: hard links)."""
    return settings.home / CACHE_FOLDER / node_name(settings)


def entry_name(info: ObjectInfo) -> str:
    """The cache's name for one version of a stored object."""
    modified = info.modified.isoformat() if info.modified else ""
    identity = f"{info.key}\n{info.size}\n{info.etag or ''}\n{modified}"
    return hashlib.sha256(identity.encode()).hexdigest()


class ShardCache:
    """One attempt's use of the node's shard cache: what it provides stays pinned (never
    evicted) until `close`."""

    def __init__(
        self, store: Storage, folder: Path, max_bytes: int, tell: Callable[[str], None] = log.info
    ) -> None:
        self.store, self.folder, self.max_bytes = store, folder, max_bytes
        self.tell = tell  # where a line of what a data step took from the cache goes
        self._pin: tuple[int, Path] | None = None  # this attempt's pin file, held open
        self.used = CacheUse()  # what every `provide` of this attempt did, summed

    @classmethod
    def for_node(
        cls, settings: Settings, store: Storage, tell: Callable[[str], None] = log.info
    ) -> ShardCache:
        return cls(store, node_shard_folder(settings), settings.shard_cache_bytes, tell)

    def provide(
        self,
        objects: Iterable[ObjectInfo],
        target: Path,
        sha256: Mapping[str, str] | None = None,
    ) -> CacheUse:
        """Each object as `target/<its name>`: a hard link to the node's copy (a copy where
        the target lies on another disk), fetched first when the node has none, and checked
        against `sha256[key]` (the index's digest) where given as it is fetched; an entry
        already cached passed that check when it was filled. The objects stay pinned until
        `close`; other entries may be evicted to keep the bound."""
        expected = sha256 or {}
        wanted = {entry_name(info): info for info in objects}
        self._add_pins(wanted)
        use = CacheUse()
        for name, info in wanted.items():
            entry = self.folder / name
            if entry.exists():
                use.hits += 1
            else:
                use.misses += 1
                use.fetched_bytes += self._fill(info, entry, expected.get(info.key))
            now = time.time_ns()  # its last use, which eviction orders by; the kernel's
            os.utime(entry, ns=(now, now))  # own clock for files ticks only every few ms
            _link(entry, target / info.key.rsplit("/", 1)[-1])
        use.evicted, use.evicted_bytes = self.evict()
        self.used.add(use)
        return use

    def close(self) -> None:
        """Unpin what this attempt used (its entries may now be evicted)."""
        pin, self._pin = self._pin, None
        if pin is not None:
            descriptor, path = pin
            path.unlink(missing_ok=True)
            os.close(descriptor)

    def evict(self) -> tuple[int, int]:
        """Remove the least recently used unpinned entries until the cache fits its bound;
        (entries, bytes) removed."""
        with self._locked():
            pinned = self._live_pins()
            entries = sorted(self._entries(), key=lambda found: found[0])
            total = sum(size for _, size, _ in entries)
            evicted = evicted_bytes = 0
            for _, size, entry in entries:
                if total <= self.max_bytes:
                    break
                if entry.name in pinned:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                total -= size
                evicted, evicted_bytes = evicted + 1, evicted_bytes + size
        if evicted:
            log.info("shard cache: evicted %d shard(s), %d bytes", evicted, evicted_bytes)
        return evicted, evicted_bytes

    # -- pins -----------------------------------------------------------------------------

    def _add_pins(self, names: Iterable[str]) -> None:
        """Name `names` in this attempt's pin file, under the cache's lock (so no eviction
        decides between a pin and the fill it protects)."""
        with self._locked():
            if self._pin is None:
                path = self.folder / PINS / secrets.token_hex(8)
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                fcntl.flock(descriptor, fcntl.LOCK_SH)
                self._pin = (descriptor, path)
            os.write(self._pin[0], "".join(f"{name}\n" for name in names).encode())

    def _live_pins(self) -> set[str]:
        """The digests live attempts use; pin files whose holder is gone are removed."""
        pinned: set[str] = set()
        for path in (self.folder / PINS).iterdir():
            try:
                descriptor = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # held: its attempt runs
                with os.fdopen(descriptor) as file:
                    pinned.update(file.read().split())
                continue
            path.unlink(missing_ok=True)
            os.close(descriptor)
        return pinned

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if not (self.folder / PINS).is_dir():
            (self.folder / PINS).mkdir(parents=True, exist_ok=True)
            self.folder.chmod(0o700)  # jobs reach their shards by their links, not through here
        descriptor = os.open(self.folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    # -- entries --------------------------------------------------------------------------

    def _entries(self) -> list[tuple[float, int, Path]]:
        """(last use, size, path) of every entry; stale fills are removed on the way."""
        found = []
        for child in self.folder.iterdir():
            try:
                stat = child.stat()
            except FileNotFoundError:
                continue
            if child.name.startswith(TEMP_PREFIX):
                if time.time() - stat.st_mtime > STALE_FILL_S:
                    child.unlink(missing_ok=True)
            elif _ENTRY_NAME.match(child.name):
                found.append((stat.st_mtime, stat.st_size, child))
        return found

    def _fill(self, info: ObjectInfo, entry: Path, sha256: str | None) -> int:
        """Fetch the object into `entry` (read-only), whole and matching `sha256` (where
        given) or not at all; the bytes fetched."""
        temp = self.folder / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
        try:
            with temp.open("wb") as file:
                size, digest = write_hashed(self.store.open(info.key), file)
            if size != info.size:
                raise ShardCacheError(
                    f"{info.key}: the store gave {size:,} bytes, its listing said {info.size:,}"
                )
            check_digest(info.key, digest, sha256)
            temp.chmod(0o444)
            try:
                os.link(temp, entry)  # never replaces: a racing filler's copy stays
            except FileExistsError:
                log.info("shard cache: %s was fetched by another attempt first", info.key)
            return size
        finally:
            temp.unlink(missing_ok=True)


def check_digest(key: str, digest: str, expected: str | None) -> None:
    """ShardCacheError unless the fetched bytes of `key` have the SHA-256 the dataset's index
    recorded (an index without one checks nothing): a shard damaged in the store or in
    transit, or replaced under its key, is an infrastructure fault to retry, never data."""
    if expected is not None and digest != expected:
        raise ShardCacheError(
            f"{key}: its bytes' SHA-256 is {digest[:12]}..., the dataset's index says "
            f"{expected[:12]}...: the stored shard is damaged or was replaced"
        )


def _link(entry: Path, path: Path) -> None:
    """`path` as a hard link to the entry, or a copy where they lie on different disks."""
    try:
        os.link(entry, path)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        shutil.copyfile(entry, path)
