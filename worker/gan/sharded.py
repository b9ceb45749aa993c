"""A sharded dataset (shared/datafiles/shard_index.py) as the engine's training data: its
sample shape and classes, read from its index alone, and a rank's streaming `ShardSource`.

`data.py` asks `sharded_folder` first: an `images` or `dataset` source whose folder holds a
shard index streams from its shards whatever else lies beside them; everything else is read
into memory as before.
"""

from __future__ import annotations

from pathlib import Path

import torch

from shared.datafiles.shard_index import ShardIndex, is_sharded, read_index
from shared.specs import TrainSpec
from shared.specs.data import IMAGE_SIZES, DataSpec
from worker.gan.errors import DataError, as_data_error
from worker.gan.shard_stream import LOADER_WORKERS, ShardSource, loader_plan

# Sources whose folder may hold shards: an image folder (path or key) and an upload.
_SHARDABLE_SOURCES = ("images", "dataset")


def sharded_folder(data: DataSpec, data_path: Path | None) -> Path | None:
    """The folder of the sharded dataset `data` names, or None when it is not sharded."""
    if data.source not in _SHARDABLE_SOURCES:
        return None
    location = data_path or (Path(data.path) if data.path else None)
    if location is None or not is_sharded(location):
        return None
    return location


def shard_shape(data: DataSpec, folder: Path) -> tuple[int, int, int]:
    """One sample's (channels, size, size) once `data.resize` and `data.channels` apply to the
    index's images; DataError when they are of mixed or unsupported sizes without resize."""
    index = _index(folder)
    channels = data.channels or index.channels
    if data.resize is not None:
        return (channels, data.resize, data.resize)
    if index.shape is None:
        raise DataError(
            f"{folder.name}: images of mixed sizes; set data.resize to one of "
            f"{', '.join(str(size) for size in IMAGE_SIZES)}"
        )
    _, height, width = index.shape
    if height != width or height not in IMAGE_SIZES:
        raise DataError(
            f"{folder.name}: images are {width}x{height}; models make square images of "
            f"{', '.join(str(size) for size in IMAGE_SIZES)} px: set data.resize"
        )
    return (channels, height, width)


def shard_classes(spec: TrainSpec, folder: Path) -> int:
    """How many classes a conditional model on the shards has: the index's; DataError naming
    `model.conditional` when it lists none, `model.classes` when the spec asks for fewer."""
    classes = _index(folder).classes
    if classes is None:
        raise DataError(
            f"model.conditional: {folder.name} has no labels to condition on (its images "
            "were not in class sub-folders when it was sharded)"
        )
    if spec.model.classes is not None and len(classes) > spec.model.classes:
        raise DataError(
            f"model.classes: the data has {len(classes)} classes, more than {spec.model.classes}"
        )
    return len(classes)


def open_shards(
    spec: TrainSpec, folder: Path, rank: int, world_size: int, batch_size: int
) -> ShardSource:
    """This rank's streaming source over the shards in `folder`."""
    if spec.model.conditional:
        shard_classes(spec, folder)
    requested = spec.data.loader_workers
    workers, threads = loader_plan(
        LOADER_WORKERS if requested is None else requested, torch.get_num_threads()
    )
    if workers:  # each loader process takes one of the rank's cores
        torch.set_num_threads(threads)
    return ShardSource(
        folder,
        _index(folder),
        sample_shape=spec.data.sample_shape or shard_shape(spec.data, folder),
        seed=spec.train.seed,
        rank=rank,
        world_size=world_size,
        batch_size=batch_size,
        workers=workers,
        labelled=spec.model.conditional,
    )


def _index(folder: Path) -> ShardIndex:
    with as_data_error():
        return read_index(folder)
