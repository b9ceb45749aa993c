"""What the agent fetches for a job's processes: their data files and the uploads an inversion
reads, written into the attempt's inputs folder (the agent's, which the job's processes may
read and never write), so no process of the job needs a storage key to read its own data.

A sharded dataset (a listing with `shards.json`) comes through the node's shard cache when
the agent gives one (shard_cache.py): its index and the shards it names, linked from the
node's copies, fetched only where the node has none. Each shard's bytes are checked against
the SHA-256 its index recorded, through the cache or not. One larger than the cache's bound is
refused, naming the spec's field and the setting, before any shard is fetched."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from shared.datafiles.roots import DataPathRefusedError, check_data_path
from shared.datafiles.shard_index import INDEX_NAME, ShardIndex, ShardIndexError, read_index
from shared.specs.data import DataSpec
from shared.storage import Storage, keys
from shared.storage.base import ObjectInfo
from worker.agent.downloads import download
from worker.agent.shard_cache import ShardCache, check_digest
from worker.channel.link import JobInputError


def fetch_data(
    data: DataSpec,
    store: Storage,
    folder: Path,
    data_roots: Sequence[Path] = (),
    shards: ShardCache | None = None,
) -> Path | None:
    """A local folder holding the data files: the spec's path (checked against the data
    roots again here, on the disk that counts), or a copy of the store prefix in `folder`
    (a sharded one through `shards`, the node's cache, when given)."""
    if data.path is not None:
        try:
            path = check_data_path(data.path, data_roots)
        except DataPathRefusedError as refused:
            raise JobInputError(f"spec.data.path: {refused}") from None
        if not path.exists():
            raise JobInputError(f"spec.data.path: {data.path} does not exist on this worker")
        return path
    if data.dataset_id is not None:
        prefix, field = keys.dataset_prefix(data.dataset_id), "spec.data.dataset_id"
        objects = store.list(prefix)
        if not objects:
            raise JobInputError(f"{field}: dataset {data.dataset_id} is no longer stored")
    elif data.key is not None:
        prefix, field = data.key.rstrip("/") + "/", "spec.data.key"
        objects = store.list(prefix) or store.list(data.key)
        if not objects:
            raise JobInputError(f"{field}: nothing stored under {data.key!r}")
    else:
        return None
    target = folder / "data"
    target.mkdir(parents=True, exist_ok=True)
    stored = {obj.key: obj for obj in objects}
    if shards is not None and prefix + INDEX_NAME in stored:
        _provide_shards(stored, prefix, shards, target, field)
        return target
    digests = {}
    for obj in objects:  # streamed: uploads and prefixes of shards may hold gigabytes
        name = obj.key.rsplit("/", 1)[-1]
        digests[name] = download(store, obj.key, target / name)
    if INDEX_NAME in digests:
        for entry in _index(target, field).shards:
            if entry.name in digests:  # a missing shard is the stream's error to name
                check_digest(prefix + entry.name, digests[entry.name], entry.sha256)
    return target


def _provide_shards(
    stored: dict[str, ObjectInfo], prefix: str, shards: ShardCache, target: Path, field: str
) -> None:
    """The index under `prefix` and the shards it names into `target` from the node's cache;
    the rest of the listing is left (a rank reads nothing else of a sharded folder)."""
    index = stored[prefix + INDEX_NAME]
    if index.size > shards.max_bytes:
        raise JobInputError(f"{field}: {INDEX_NAME} is larger than the node's shard cache")
    use = shards.provide([index], target)
    entries = _index(target, field).shards
    named = [entry.name for entry in entries]
    missing = [name for name in named if prefix + name not in stored]
    if missing:
        raise JobInputError(
            f"{field}: {INDEX_NAME} names {len(missing)} shard(s) not stored, "
            f"{missing[0]} the first"
        )
    wanted = [stored[prefix + name] for name in named]
    total = index.size + sum(obj.size for obj in wanted)
    if total > shards.max_bytes:
        raise JobInputError(
            f"{field}: the dataset's shards take {total / 1e9:,.2f} GB, more than this "
            f"node's shard cache holds ({shards.max_bytes / 1e9:,.2f} GB, "
            "GANFORGE_SHARD_CACHE_BYTES): a job reads every shard each epoch, so the node "
            "must hold them all; an operator may raise the bound, or train on a subset"
        )
    digests = {prefix + entry.name: entry.sha256 for entry in entries if entry.sha256}
    use.add(shards.provide(wanted, target, digests))
    shards.tell(f"{field}: {use.line()}")


def _index(folder: Path, field: str) -> ShardIndex:
    """The fetched index of a sharded dataset; a bad one is the job's input error."""
    try:
        return read_index(folder, field)
    except ShardIndexError as error:
        raise JobInputError(str(error)) from None
