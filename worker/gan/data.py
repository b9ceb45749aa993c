"""Training data as per-rank batches by step number: toy points, MNIST, .npz, image archives.

A `BatchSource` computes the batch of any step from (seed, step, rank, world size) alone, so
data order repeats exactly and a resumed run needs no saved sampler state. Toy distributions
live in `toydata`; files are read by `shared.datafiles.formats` (numpy and Pillow, shared with the
API's upload checks) and turned into tensors here.

A spec may leave the data's shape open (an .npz can hold points or images, an archive's image
size and colour are in its files): `resolve_data` reads it from the data and returns the spec
with `data.shape` filled in, before networks are built from the spec.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from pydantic import ValidationError
from torch import Tensor

from shared.datafiles import formats as datafiles
from shared.datafiles.confine import folder_files, list_folder
from shared.datafiles.formats import DataFileError
from shared.datafiles.images import IMAGE_SUFFIXES
from shared.specs import TrainSpec
from shared.specs.data import IMAGE_SIZES, IMAGE_SIZES_TEXT, MNIST_SIDE, TOY_POINT_DIMS, DataSpec
from shared.specs.model import MIN_CLASSES
from worker.gan.class_labels import (
    class_count,
    read_folder_labels,
    read_mnist_labels,
    read_npz_labels,
)
from worker.gan.errors import DataError, as_data_error
from worker.gan.mnist_files import find_mnist_images
from worker.gan.seeding import Stream, generator_for
from worker.gan.sharded import open_shards, shard_classes, shard_shape, sharded_folder
from worker.gan.toydata import (  # noqa: F401 (re-exported: the names tests and bench use)
    RING8_MODE_COUNT,
    RING8_RADIUS,
    RING8_STD,
    TOY_SOURCES,
    Ring8Source,
    ring8_modes,
    ring8_sample,
    toy_distribution,
)

# uint8 pixels [0, 255] to the generator's tanh range [-1, 1].
_PIXEL_HALF_RANGE = 127.5
# Point data from a file (an upload, an .npz by path or key) has no known modes, so its
# evaluations score the generator against real points it never trained on: a fixed share of
# the file's points, chosen by HELD_BACK_SEED alone (whatever the job's seed, every job on
# the data that holds points back holds back the same ones), at most HELD_BACK_MAX of them,
# and none when that would leave fewer than HELD_BACK_MIN to score against or less than one
# batch to train on.
HELD_BACK_FRACTION = 0.2
HELD_BACK_MAX = 2000
HELD_BACK_MIN = 100
HELD_BACK_SEED = 15_485_863


class BatchSource(Protocol):
    """Training batches of one rank, addressed by the 1-based step they are for."""

    batch_size: int

    def batch(self, step: int) -> Tensor:
        """The batch of `step` on this rank, on the CPU."""
        ...


def reference_points(data: DataSpec, n: int, seed: int) -> Tensor | None:
    """A fixed sample of real points to draw generated ones over; None unless a toy source."""
    if data.source not in TOY_POINT_DIMS:
        return None
    return toy_distribution(data.source).sample(n, generator_for(seed, Stream.REFERENCE))


class ArraySource:
    """Batches of samples held in memory, a distributed sampler without state.

    `samples` are uint8 images [N, C, H, W] (served scaled to [-1, 1]) or float points
    [N, d] (served as they are). Each epoch visits a permutation seeded by (seed, epoch);
    every step takes the next `batch_size * world_size` indices and each rank its own slice
    of them, so ranks never share a sample within an epoch. The incomplete last global batch
    of an epoch is dropped.
    """

    def __init__(
        self,
        samples: Tensor,
        seed: int,
        rank: int,
        world_size: int,
        batch_size: int,
        label: str = "the data",
        labels: Tensor | None = None,
    ):
        global_batch = batch_size * world_size
        if len(samples) < global_batch:
            raise DataError(
                f"{label} has {len(samples)} samples, fewer than one global batch of {global_batch}"
            )
        self.samples, self.seed, self.rank, self.batch_size = samples, seed, rank, batch_size
        self.labels = labels
        self.global_batch = global_batch
        self.steps_per_epoch = len(samples) // global_batch
        self._epoch, self._order = -1, torch.empty(0, dtype=torch.int64)

    def batch(self, step: int) -> Tensor:
        chosen = self.samples[self._indices(step)]
        if chosen.dtype == torch.uint8:
            return chosen.float() / _PIXEL_HALF_RANGE - 1
        return chosen

    def batch_labels(self, step: int) -> Tensor:
        """The class labels of `batch(step)`'s samples, in the same order (int64 [B])."""
        if self.labels is None:
            raise DataError("the data has no labels: only a conditional model asks for them")
        return self.labels[self._indices(step)]

    def _indices(self, step: int) -> Tensor:
        epoch, position = divmod(step - 1, self.steps_per_epoch)
        start = position * self.global_batch + self.rank * self.batch_size
        return self._order_of(epoch)[start : start + self.batch_size]

    def _order_of(self, epoch: int) -> Tensor:
        if epoch != self._epoch:
            generator = generator_for(self.seed, Stream.DATA_ORDER, epoch)
            self._epoch, self._order = epoch, torch.randperm(len(self.samples), generator=generator)
        return self._order


class MnistSource(ArraySource):
    """MNIST images uint8 [N, 28, 28] as batches [B, 1, 28, 28] in [-1, 1]."""

    def __init__(self, images: Tensor, seed: int, rank: int, world_size: int, batch_size: int):
        super().__init__(images.unsqueeze(1), seed, rank, world_size, batch_size, "MNIST")


def open_data(spec: TrainSpec, data_path: Path | None, rank: int, world_size: int) -> BatchSource:
    """The batch source of `rank` for `spec`; batch size is batch_size // world_size, ≥ 1.

    `data_path` is the local file or folder of a file-based source (the caller fetches store
    keys and uploads); without it, `spec.data.path` is used.
    """
    batch_size = max(1, spec.train.batch_size // world_size)
    if spec.data.source in TOY_SOURCES:
        return TOY_SOURCES[spec.data.source](spec.train.seed, rank, batch_size)
    shards = sharded_folder(spec.data, data_path)
    if shards is not None:  # streamed, never read whole
        return open_shards(spec, shards, rank, world_size, batch_size)
    samples, label = load_samples(spec.data, data_path)
    labels = labels_for(spec, data_path, len(samples)) if spec.model.conditional else None
    if is_point_array(samples):  # the held-back points are for evaluations only
        kept = held_back_split(len(samples), spec.train.batch_size)[0]
        samples, labels = samples[kept], None if labels is None else labels[kept]
    return ArraySource(samples, spec.train.seed, rank, world_size, batch_size, label, labels)


def load_labels(data: DataSpec, data_path: Path | None) -> Tensor | None:
    """The class labels that come with a file source (see `class_labels`), one per sample
    in `load_samples`' order; None for a source without them."""
    if data.source in TOY_SOURCES:
        return None
    location = _local_path(data, data_path)
    with as_data_error():
        if data.source == "mnist":
            return read_mnist_labels(find_mnist_images(location))
        path = _data_file(data, location)
        fmt = datafiles.detect_format(path.name) if path.is_file() else "folder"
        if fmt == "npz":
            return read_npz_labels(path, path.name)
        if fmt == "idx":
            return read_mnist_labels(path)
        return read_folder_labels(path, path.name)


def labels_for(spec: TrainSpec, data_path: Path | None, count: int | None = None) -> Tensor:
    """A conditional model's labels: DataError naming `model.conditional` when the data has
    none, or labels that do not fit `count` samples or `model.classes`."""
    labels = load_labels(spec.data, data_path)
    if labels is None:
        raise DataError(
            f"model.conditional: the {spec.data.source} data has no labels to condition on "
            "(an MNIST labels file beside the images, a `labels` array in the .npz, or "
            "images in class sub-folders)"
        )
    if count is not None and len(labels) != count:
        raise DataError(f"model.conditional: {len(labels)} labels for {count} samples")
    classes = spec.model.classes
    if classes is not None and class_count(labels) > classes:
        raise DataError(
            f"model.classes: the data has labels up to {class_count(labels) - 1}, more than "
            f"{classes} classes"
        )
    return labels


def with_classes(spec: TrainSpec, data_path: Path | None) -> TrainSpec:
    """`spec` with `model.classes` read from the data's labels where a conditional model left
    it open (so its checkpoints carry it); any other spec as it is. DataError as `labels_for`."""
    if not spec.model.conditional or spec.model.classes is not None:
        return spec
    shards = sharded_folder(spec.data, data_path)
    classes = (
        class_count(labels_for(spec, data_path)) if shards is None else shard_classes(spec, shards)
    )
    model = spec.model.model_copy(update={"classes": max(classes, MIN_CLASSES)})
    return spec.model_copy(update={"model": model})


def is_point_array(samples: Tensor) -> bool:
    """Whether loaded samples are points [N, d] (images are uint8 [N, C, H, W])."""
    return samples.ndim == 2 and samples.dtype.is_floating_point


def held_back_count(count: int, batch_size: int) -> int:
    """How many of a point file's `count` points are held back from training (see
    HELD_BACK_FRACTION): 0 when fewer than HELD_BACK_MIN would be, or when the rest would
    not fill one batch of `batch_size` (spec.train.batch_size)."""
    held = min(HELD_BACK_MAX, int(count * HELD_BACK_FRACTION))
    if held < HELD_BACK_MIN or count - held < batch_size:
        return 0
    return held


def held_back_split(count: int, batch_size: int) -> tuple[Tensor, Tensor]:
    """(training indices, held-back indices) of a point file's `count` points, each in
    increasing order: a permutation fixed by HELD_BACK_SEED, its first `held_back_count`
    points held back. Training and evaluation both call this, so they agree on the split."""
    order = torch.randperm(count, generator=generator_for(HELD_BACK_SEED, Stream.EVALUATION))
    held = held_back_count(count, batch_size)
    return order[held:].sort().values, order[:held].sort().values


def point_dim(data: DataSpec) -> int:
    """The dimension of the points a source yields (1 or 2), for the mlp family's layers."""
    shape = known_shape(data)
    if len(shape) != 1:
        raise ValueError(f"{data.source} is not a point source: its samples are {list(shape)}")
    return shape[0]


def known_shape(data: DataSpec) -> tuple[int, ...]:
    """One sample's shape; DataError while the data has not been read to tell it."""
    shape = data.sample_shape
    if shape is None:
        raise DataError(
            f"the shape of {data.source} data is known once it is read: call "
            "resolve_data(spec, data_path) before building networks"
        )
    return shape


def resolve_data(spec: TrainSpec, data_path: Path | None) -> TrainSpec:
    """`spec` with `data.shape` read from the data (file headers only) where it was open.

    DataError when the data does not fit the spec: an mlp on images, a dcgan on points,
    images of mixed or unsupported sizes without `resize`.
    """
    if spec.data.sample_shape is not None:
        return spec
    shards = sharded_folder(spec.data, data_path)
    if shards is not None:
        shape: tuple[int, ...] = shard_shape(spec.data, shards)
    else:
        with as_data_error():
            shape = _shape_in_files(spec.data, _local_path(spec.data, data_path))
    fields = {**spec.data.model_dump(exclude_none=True), "shape": shape}
    try:
        return TrainSpec.model_validate({**spec.model_dump(), "data": fields})
    except ValidationError as exc:
        reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise DataError(f"spec.data: the data's samples are {list(shape)}: {reasons}") from None


def _shape_in_files(data: DataSpec, location: Path) -> tuple[int, ...]:
    path = _data_file(data, location)
    info = datafiles.inspect_data(path, path.name, decode=False)
    if info.kind == "points":
        assert info.shape is not None  # points always have one shape
        return info.shape
    channels = data.channels or info.channels or 1
    if data.resize is not None:
        return (channels, data.resize, data.resize)
    sizes = info.sizes or {}
    (height, width), *others = sizes
    if others:
        raise DataFileError(
            f"{path.name}: images of mixed sizes: {datafiles.describe_sizes(sizes)}; set "
            f"data.resize to one of {IMAGE_SIZES_TEXT}"
        )
    _check_image_size(height, width, path.name)
    return (channels, height, width)


def _check_image_size(height: int, width: int, label: str) -> None:
    if height != width or height not in IMAGE_SIZES:
        raise DataFileError(
            f"{label}: images are {width}x{height}; models make {IMAGE_SIZES_TEXT} px square "
            "images: set data.resize to one of those (a center crop comes first)"
        )


def load_samples(data: DataSpec, data_path: Path | None) -> tuple[Tensor, str]:
    """A file source's samples, uint8 images [N, C, H, W] or float32 points [N, d], and the
    name of the file they came from. DataError when they do not match `data.shape`."""
    location = _local_path(data, data_path)
    with as_data_error():
        if data.source == "mnist":
            path, label = find_mnist_images(location), "MNIST"
            array = datafiles.read_idx3(path, path.name, side=MNIST_SIDE)[..., np.newaxis]
            array = datafiles.fit_image_array(array, data.resize, data.channels)
        else:
            path = _data_file(data, location)
            label = path.name
            array = _read_file(data, path)
        samples = torch.from_numpy(array)
        if samples.ndim == 4:  # [N, H, W, C] -> [N, C, H, W]
            samples = samples.permute(0, 3, 1, 2).contiguous()
            _check_image_size(samples.shape[2], samples.shape[3], label)
    expected = data.sample_shape
    if expected is not None and tuple(samples.shape[1:]) != tuple(expected):
        raise DataError(
            f"{label}: samples are {list(samples.shape[1:])}, but spec.data says {list(expected)}"
        )
    return samples, label


def _read_file(data: DataSpec, path: Path) -> np.ndarray:
    """Points [N, d] float32 or images [N, H, W, C] uint8, resized and converted per `data`."""
    fmt = datafiles.detect_format(path.name) if path.is_file() else "folder"
    if fmt == "npz":
        kind, array = datafiles.read_npz(path)
        if kind == "points":
            return array
    elif fmt == "idx":
        array = datafiles.read_idx3(path, path.name)[..., np.newaxis]
    else:
        return datafiles.read_images(path, path.name, data.resize, data.channels)
    return datafiles.fit_image_array(array, data.resize, data.channels)


def _local_path(data: DataSpec, data_path: Path | None) -> Path:
    location = data_path or (Path(data.path) if data.path else None)
    if location is None:
        raise DataError(
            f"{data.source} from the artifact store must be fetched first: pass data_path"
        )
    if not location.exists():
        raise DataError(f"{location.name}: no such file or folder")
    return location


def _data_file(data: DataSpec, location: Path) -> Path:
    """The file (or image folder) inside `location` that holds the data.

    A fetched store prefix or upload is a folder: an npz source or an upload takes its one
    data file; an images source takes its images, or its one archive when it holds no images.
    """
    if location.is_file():
        return location
    with as_data_error():  # names only: each file is checked where it lies when opened
        known = [
            location / name
            for name in list_folder(location, location.name)
            if datafiles.detect_format(name) is not None and (location / name).is_file()
        ]
        if data.source == "npz":
            known = [path for path in known if datafiles.detect_format(path.name) == "npz"]
        elif data.source == "images":
            has_images = any(
                Path(found.name).suffix.lower() in IMAGE_SUFFIXES
                for found in folder_files(location, location.name)
            )
            if has_images or not known:
                return location
    if len(known) != 1:
        found = ", ".join(path.name for path in known) or "nothing usable"
        raise DataError(f"{location.name}: expected one {data.source} data file, found {found}")
    return known[0]
