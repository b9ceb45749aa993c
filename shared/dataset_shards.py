"""An uploaded image archive stored as shards under its dataset's key, and a dataset's stored
objects removed whichever way it was stored.

A sharded upload keeps no copy of its archive: `uploads/<id>/shards.json` (the dataset row's
key) and `uploads/<id>/shard-NNNNNN.tar`, which a worker's agent fetches like any upload (every
object under the prefix, into the attempt's inputs folder) and a rank streams from there.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from shared.datafiles.formats import DataInfo
from shared.datafiles.shard_index import INDEX_NAME
from shared.datafiles.shards import write_shards
from shared.storage import Storage, StorageError
from shared.storage.keys import dataset_key, dataset_prefix

# The `format` of a dataset row stored as shards.
SHARDS_FORMAT = "shards"
# Upload formats that can be stored as shards: archives of images.
SHARDABLE_FORMATS = ("zip", "tar")
# An image upload whose pixels decode to more than this is stored as shards unless the
# upload says otherwise: 1 GiB of uint8 pixels is 87,000 64 px colour images, past which
# reading it whole into every rank's memory (and again per rank on a node) starts to crowd
# a worker; below it, one archive trains faster than a stream of shards.
SHARD_UPLOADS_FROM_BYTES = 1024**3


def decoded_bytes(info: DataInfo) -> int:
    """What an image file's pixels take once decoded, as uint8 (0 for points)."""
    if info.sizes is None or info.channels is None:
        return 0
    return sum(height * width * info.channels * n for (height, width), n in info.sizes.items())


def store_shards(store: Storage, dataset_id: str, path: Path, label: str, scratch: Path) -> int:
    """Write the archive at `path` as shards in folder `scratch` and store them under the
    dataset's prefix, the index last (a reader that finds it finds every shard); return the
    bytes stored. On a storage error the objects already stored are removed again."""
    index = write_shards(path, scratch, label)
    files = [scratch / entry.name for entry in index.shards] + [scratch / INDEX_NAME]
    stored: list[str] = []
    try:
        for file in files:
            key = dataset_key(dataset_id, file.name)
            with file.open("rb") as opened:
                store.put(key, opened)
            stored.append(key)
    except StorageError:
        for key in stored:
            with contextlib.suppress(StorageError):
                store.delete(key)
        raise
    return sum(file.stat().st_size for file in files)


def index_key(dataset_id: str) -> str:
    """The key of a sharded dataset's index: its row's `key`."""
    return dataset_key(dataset_id, INDEX_NAME)


def delete_stored(store: Storage, dataset_id: str) -> None:
    """Delete every object under the dataset's prefix: its file, or its index and shards."""
    for found in store.list(dataset_prefix(dataset_id)):
        store.delete(found.key)
