"""The worker's node cache of code bundles (worker/bundles.py) on a local store: fetched once,
checked against its id, unpacked readable by all, one copy however many fetch at once, and
the least recently used evicted past the bound, never one in use."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import zipfile
from pathlib import Path

import pytest

from shared.storage.keys import code_key
from shared.storage.local import LocalStorage
from worker.bundles import BundleCache, BundleFetchError


def zipped(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o100777 << 16  # modes the cache must not keep
            archive.writestr(info, data)
    return out.getvalue()


def stored(store: LocalStorage, members: dict[str, bytes]) -> str:
    data = zipped(members)
    sha = hashlib.sha256(data).hexdigest()
    store.put(code_key(sha, "zip"), data)
    return sha


@pytest.fixture
def store(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "store")


def test_a_bundle_is_fetched_once_and_unpacked_readable_by_all(
    store: LocalStorage, tmp_path: Path
) -> None:
    sha = stored(store, {"mygan/__init__.py": b"", "mygan/nets.py": b"G = 1\n"})
    cache = BundleCache(store, tmp_path / "cache", max_bytes=1024 * 1024)
    tree = cache.fetch(sha)
    assert (tree / "mygan" / "nets.py").read_bytes() == b"G = 1\n"
    store.delete(code_key(sha, "zip"))
    assert cache.fetch(sha) == tree, "the node's copy, not a second download"
    for path in [tree, *tree.rglob("*")]:
        mode = path.stat().st_mode & 0o7777
        assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))
        assert path.stat().st_uid == os.getuid()
    assert (tree.parent.stat().st_mode & 0o777) == 0o755, "the jobs' account reaches the tree"


def test_bytes_that_are_not_the_id_or_not_safe_are_refused_and_leave_nothing(
    store: LocalStorage, tmp_path: Path
) -> None:
    cache = BundleCache(store, tmp_path / "cache", max_bytes=1024 * 1024)
    swapped = hashlib.sha256(b"something else").hexdigest()
    store.put(code_key(swapped, "zip"), zipped({"a.py": b""}))
    with pytest.raises(BundleFetchError, match="stored bytes have SHA-256"):
        cache.fetch(swapped)
    climbing = stored(store, {"../../escape.py": b""})
    with pytest.raises(BundleFetchError, match="unsafe path"):
        cache.fetch(climbing)
    with pytest.raises(BundleFetchError, match="not stored"):
        cache.fetch("0" * 64)
    with pytest.raises(BundleFetchError, match="not a ganforge code bundle id"):
        cache.fetch("../x")
    assert list((tmp_path / "cache").iterdir()) == []
    assert not (tmp_path / "escape.py").exists()


def test_processes_racing_for_one_bundle_end_with_one_copy(
    store: LocalStorage, tmp_path: Path
) -> None:
    sha = stored(store, {f"m{i}.py": bytes(1000) for i in range(50)})
    folder = tmp_path / "cache"
    start = threading.Barrier(4)
    trees: list[Path] = []

    def fetch() -> None:
        cache = BundleCache(store, folder, max_bytes=1024 * 1024)  # one per "process"
        start.wait()
        trees.append(cache.fetch(sha))

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(trees) == 4 and len(set(trees)) == 1
    assert [entry.name for entry in folder.iterdir()] == [sha], "no second copy, no leftovers"
    assert len(list(trees[0].iterdir())) == 50


def test_past_the_bound_the_least_recently_used_go_but_never_one_in_use(
    store: LocalStorage, tmp_path: Path
) -> None:
    shas = [stored(store, {f"b{i}.py": bytes(100)}) for i in range(4)]
    cache = BundleCache(store, tmp_path / "cache", max_bytes=250)  # two bundles fit
    for age, sha in zip((300, 200), shas[:2], strict=True):
        cache.fetch(sha)
        os.utime(tmp_path / "cache" / sha, (0, 10_000 - age))  # used long ago, oldest first
    cache.fetch(shas[2])
    held = {entry.name for entry in (tmp_path / "cache").iterdir()}
    assert held == {shas[1], shas[2]}, "the least recently used went"

    with cache.use(shas[1]) as in_use:  # the oldest now, but a job imports from it
        os.utime(tmp_path / "cache" / shas[1], (0, 1))
        cache.fetch(shas[3])
        assert (in_use / "b1.py").exists()
    held = {entry.name for entry in (tmp_path / "cache").iterdir()}
    assert held == {shas[1], shas[3]}, "the one in use stayed; the other old one went"
