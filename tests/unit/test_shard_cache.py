"""The node's shard cache (worker/agent/shard_cache.py) on a local store: the least recently
used shard goes first past the bound, never one a live attempt uses, two attempts filling
one shard at once end with one whole copy, and a larger-than-the-cache dataset is refused
by name before a shard is fetched."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.config import Settings
from shared.datafiles.shard_index import read_index
from shared.datafiles.shards import write_shards
from shared.specs.data import DataSpec
from shared.storage.base import ObjectInfo
from shared.storage.local import LocalStorage
from tests.attempts import attempt_of
from tests.data_builders import grey_pngs, write_tar
from tests.unit.job_factories import running_job
from worker.agent.inputs import fetch_data
from worker.agent.shard_cache import ShardCache, ShardCacheError, entry_name
from worker.channel.link import JobInputError
from worker.node import node_name

SHARD = 100  # bytes of each test object


@pytest.fixture
def store(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "store")


def put(store: LocalStorage, name: str, size: int = SHARD) -> ObjectInfo:
    key = f"sets/a/{name}"
    store.put(key, name.encode().ljust(size, b"."))
    return next(info for info in store.list("sets/a/") if info.key == key)


def cached(cache_folder: Path) -> set[str]:
    return {child.name for child in cache_folder.iterdir() if len(child.name) == 64}


class Attempts:
    """Attempts on one node's cache, each with its own inputs folder."""

    def __init__(self, store: LocalStorage, root: Path, max_bytes: int) -> None:
        self.store, self.root, self.max_bytes, self.made = store, root, max_bytes, 0

    def open(self) -> tuple[ShardCache, Path]:
        self.made += 1
        target = self.root / f"attempt-{self.made}"
        target.mkdir(parents=True)
        return ShardCache(self.store, self.root / "cache", self.max_bytes), target

    def run(self, objects: list[ObjectInfo]) -> None:
        """One attempt that uses `objects` and ends."""
        cache, target = self.open()
        cache.provide(objects, target)
        cache.close()


@pytest.fixture
def attempts(store: LocalStorage, tmp_path: Path) -> Attempts:
    return Attempts(store, tmp_path / "node", max_bytes=2 * SHARD + SHARD // 2)


def test_past_the_bound_the_least_recently_used_shard_goes_first(
    store: LocalStorage, attempts: Attempts
) -> None:
    a, b, c, d = (put(store, name) for name in ("a", "b", "c", "d"))
    attempts.run([a])
    attempts.run([b])
    attempts.run([c])  # 300 bytes past a bound of 250: a, used longest ago, goes
    assert cached(attempts.root / "cache") == {entry_name(b), entry_name(c)}
    attempts.run([b])  # used again: now c is the least recent
    attempts.run([d])
    assert cached(attempts.root / "cache") == {entry_name(b), entry_name(d)}


def test_a_shard_a_running_attempt_uses_is_never_evicted(
    store: LocalStorage, attempts: Attempts
) -> None:
    a, b, c, d = (put(store, name) for name in ("a", "b", "c", "d"))
    running, target = attempts.open()
    running.provide([a], target)
    attempts.run([b])
    attempts.run([c])  # a is the least recent, but pinned: b goes instead
    assert cached(attempts.root / "cache") == {entry_name(a), entry_name(c)}
    assert (target / "a").read_bytes().startswith(b"a.")
    running.close()
    attempts.run([d])  # unpinned, a is the one to go now
    assert cached(attempts.root / "cache") == {entry_name(c), entry_name(d)}


def _provide_and_die(cache_folder: str, store_root: str, info: ObjectInfo, target: str) -> None:
    cache = ShardCache(LocalStorage(Path(store_root)), Path(cache_folder), 10 * SHARD)
    cache.provide([info], Path(target))
    os._exit(0)  # no close: as a worker killed mid-attempt


def test_a_pin_left_by_a_dead_agent_does_not_keep_its_shards(
    store: LocalStorage, attempts: Attempts, tmp_path: Path
) -> None:
    a, b, c = (put(store, name) for name in ("a", "b", "c"))
    (tmp_path / "dead").mkdir()
    process = multiprocessing.get_context("fork").Process(
        target=_provide_and_die,
        args=(str(attempts.root / "cache"), str(tmp_path / "store"), a, str(tmp_path / "dead")),
    )
    process.start()
    process.join(30)
    assert process.exitcode == 0
    assert len(list((attempts.root / "cache" / "pins").iterdir())) == 1
    attempts.run([b])
    attempts.run([c])
    assert cached(attempts.root / "cache") == {entry_name(b), entry_name(c)}
    assert list((attempts.root / "cache" / "pins").iterdir()) == []


class SlowStore(LocalStorage):
    """A local store that serves its bytes in small, slow chunks: two fills overlap."""

    def open(self, key: str) -> Iterator[bytes]:
        data = self.get(key)
        for start in range(0, len(data), 5):
            time.sleep(0.02)
            yield data[start : start + 5]


def test_two_attempts_filling_one_shard_at_once_end_with_one_whole_copy(
    tmp_path: Path,
) -> None:
    store = SlowStore(tmp_path / "store")
    a = put(store, "a")
    racers = Attempts(store, tmp_path / "node", max_bytes=10 * SHARD)
    opened = [racers.open(), racers.open()]
    start, uses = threading.Barrier(2), []

    def fill(cache: ShardCache, target: Path) -> None:
        start.wait()
        uses.append(cache.provide([a], target))

    threads = [threading.Thread(target=fill, args=pair) for pair in opened]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [use.misses for use in uses] == [1, 1], "both fetched: the fills overlapped"
    cache_folder = tmp_path / "node" / "cache"
    assert sorted(child.name for child in cache_folder.iterdir()) == sorted(
        [entry_name(a), ".lock", "pins"]
    ), "one copy, no temporary left"
    entry = cache_folder / entry_name(a)
    assert entry.read_bytes() == store.get(a.key)
    assert entry.stat().st_mode & 0o777 == 0o444
    for _, target in opened:
        assert (target / "a").stat().st_ino == entry.stat().st_ino, "a link to the one copy"


class CutShortStore(LocalStorage):
    """A local store whose downloads end early, as a connection dropped mid-object."""

    def open(self, key: str) -> Iterator[bytes]:
        yield self.get(key)[: SHARD // 2]


def test_a_fill_cut_short_leaves_no_entry_and_no_temporary(tmp_path: Path) -> None:
    store = CutShortStore(tmp_path / "store")
    a = put(store, "a")
    cache, target = Attempts(store, tmp_path / "node", max_bytes=10 * SHARD).open()
    with pytest.raises(ShardCacheError, match="the store gave 50 bytes, its listing said 100"):
        cache.provide([a], target)
    assert sorted(child.name for child in (tmp_path / "node" / "cache").iterdir()) == [
        ".lock",
        "pins",
    ]
    assert list(target.iterdir()) == []


def sharded_prefix(store: LocalStorage, tmp_path: Path, images: int) -> int:
    """A sharded dataset of `images` 28 px PNGs, two a shard, stored under `datasets/s/`; the
    stored bytes (index and shards)."""
    archive = write_tar(tmp_path / "digits.tar", grey_pngs(images, 28))
    index = write_shards(archive, tmp_path / "sharded", images_per_shard=2)
    for file in [tmp_path / "sharded" / "shards.json"] + [
        tmp_path / "sharded" / entry.name for entry in index.shards
    ]:
        store.put(f"datasets/s/{file.name}", file.read_bytes())
    return sum(info.size for info in store.list("datasets/s/"))


def test_a_dataset_larger_than_the_cache_is_refused_naming_the_field_and_the_setting(
    store: LocalStorage, tmp_path: Path
) -> None:
    stored = sharded_prefix(store, tmp_path, images=6)
    cache = ShardCache(store, tmp_path / "cache", max_bytes=stored - 1)
    with pytest.raises(JobInputError) as refused:
        fetch_data(
            DataSpec(source="images", key="datasets/s"), store, tmp_path / "in", shards=cache
        )
    message = str(refused.value)
    assert message.startswith("spec.data.key: the dataset's shards take")
    assert "GANFORGE_SHARD_CACHE_BYTES" in message
    assert sorted(os.listdir(tmp_path / "in" / "data")) == ["shards.json"], "no shard fetched"
    cache.close()
    fits = ShardCache(store, tmp_path / "cache", max_bytes=stored)
    folder = fetch_data(
        DataSpec(source="images", key="datasets/s"), store, tmp_path / "in2", shards=fits
    )
    assert folder is not None
    assert sorted(os.listdir(folder)) == [
        "shard-000000.tar",
        "shard-000001.tar",
        "shard-000002.tar",
        "shards.json",
    ]


@pytest.mark.parametrize("through_cache", [True, False])
def test_a_shard_damaged_in_the_store_is_refused_by_its_index_digest(
    store: LocalStorage, tmp_path: Path, through_cache: bool
) -> None:
    sharded_prefix(store, tmp_path, images=4)
    index = read_index(tmp_path / "sharded")
    assert [entry.sha256 for entry in index.shards] == [
        hashlib.sha256((tmp_path / "sharded" / entry.name).read_bytes()).hexdigest()
        for entry in index.shards
    ]
    damaged = bytearray(store.get("datasets/s/shard-000001.tar"))
    damaged[600] ^= 1  # one bit of the second image's bytes, the size unchanged
    store.put("datasets/s/shard-000001.tar", bytes(damaged))
    cache = ShardCache(store, tmp_path / "cache", 10**6) if through_cache else None
    with pytest.raises(ShardCacheError, match=r"datasets/s/shard-000001.tar: its bytes' SHA-256"):
        fetch_data(
            DataSpec(source="images", key="datasets/s"), store, tmp_path / "in", shards=cache
        )
    if cache is not None:
        assert not any(name.startswith(".tmp-") for name in os.listdir(tmp_path / "cache"))
        assert len(cached(tmp_path / "cache")) == 2, "the index and the whole first shard only"


class CountingStore(LocalStorage):
    """The node's real local store, noting each object it serves."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.served: list[str] = []

    def open(self, key: str) -> Iterator[bytes]:
        self.served.append(key)
        return super().open(key)


def test_a_second_attempt_on_the_same_dataset_fetches_nothing_through_its_agent(
    settings: Settings, tmp_path: Path
) -> None:
    store = CountingStore(tmp_path / "store")
    sharded_prefix(store, tmp_path, images=6)
    spec = DataSpec(source="images", key="datasets/s").model_dump(mode="json")
    folders = []
    for attempt_number, job_id in enumerate([running_job(settings), running_job(settings)]):
        with attempt_of(settings, store, job_id, 1, tmp_path / f"job-{attempt_number}") as one:
            notes: list[str] = []
            one.link.on_note = notes.append  # as the process that keeps the job's log does
            reply, _ = one.link.call("data", data=spec)
            folder = Path(reply["path"])
            assert read_index(folder).counts == [2, 2, 2]
            served, store.served = store.served, []
            folders.append(folder)
            if attempt_number == 0:
                assert len(served) == 4, "the first fetches the index and three shards"
                assert notes[0].startswith("spec.data.key: 0 file(s) from the node's shard")
            else:
                assert served == [], "the second is served from the node's cache alone"
                assert notes[0].startswith("spec.data.key: 4 file(s) from the node's shard")
                assert " 0 fetched (0.0 MB)" in notes[0]
            links = {file.stat().st_nlink for file in folder.iterdir()}
            assert links == {2 + attempt_number}, "links to the node's one copy, no copies"
    cache_folder = settings.home / "shard-cache" / node_name(settings)
    assert list((cache_folder / "pins").iterdir()) == [], "the agents unpinned at their end"
