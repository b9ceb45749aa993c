"""Training data: the ring8 toy set and MNIST, served as per-rank batches by step number.

A `BatchSource` computes the batch of any step from (seed, step, rank, world size) alone, so
data order repeats exactly and a resumed run needs no saved sampler state.
"""

from __future__ import annotations

import gzip
import math
import re
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from shared.specs import DataSpec, TrainSpec
from worker.gan.errors import DataError
from worker.gan.seeding import Stream, generator_for

# PacGAN's ring: 8 Gaussians of std 0.01 on the unit circle.
RING8_MODE_COUNT = 8
RING8_RADIUS = 1.0
RING8_STD = 0.01
# idx3 header: magic 0x00000803 means unsigned bytes, 3 dimensions (images, rows, columns).
IDX3_MAGIC = 0x00000803
IDX3_HEADER = struct.Struct(">IIII")
# MNIST's side; the dcgan layout is built for it.
MNIST_SIDE = 28
# Image files we recognise: LeCun's names and the dotted variant common in mirrors.
_MNIST_IMAGES = re.compile(r"-images[-.]idx3-ubyte(\.gz)?$")
# uint8 pixels [0, 255] to the generator's tanh range [-1, 1].
_PIXEL_HALF_RANGE = 127.5


class BatchSource(Protocol):
    """Training batches of one rank, addressed by the 1-based step they are for."""

    batch_size: int

    def batch(self, step: int) -> Tensor:
        """The batch of `step` on this rank, on the CPU."""
        ...


def ring8_modes() -> Tensor:
    """The 8 mode centres [8, 2]: angles 2πk/8 for k = 0..7 (linspace(0, 2π, 8) repeats one)."""
    angles = torch.arange(RING8_MODE_COUNT, dtype=torch.float64) * (2 * math.pi / RING8_MODE_COUNT)
    return (RING8_RADIUS * torch.stack([angles.cos(), angles.sin()], dim=1)).float()


def ring8_sample(n: int, generator: torch.Generator) -> Tensor:
    """`n` ring8 points [n, 2]: a uniformly chosen mode plus N(0, RING8_STD²) noise."""
    modes = ring8_modes()[torch.randint(0, RING8_MODE_COUNT, (n,), generator=generator)]
    return modes + RING8_STD * torch.randn(n, 2, generator=generator)


class Ring8Source:
    """Fresh ring8 points every step, from a generator seeded by (seed, step, rank)."""

    def __init__(self, seed: int, rank: int, batch_size: int):
        self.seed, self.rank, self.batch_size = seed, rank, batch_size

    def batch(self, step: int) -> Tensor:
        return ring8_sample(self.batch_size, generator_for(self.seed, Stream.DATA, step, self.rank))


def reference_points(data: DataSpec, n: int, seed: int) -> Tensor | None:
    """A fixed sample of real points to draw generated ones over; None for image sources."""
    if data.source != "toy:ring8":
        return None
    return ring8_sample(n, generator_for(seed, Stream.REFERENCE))


class MnistSource:
    """MNIST batches in [-1, 1], shape [B, 1, 28, 28], a distributed sampler without state.

    Each epoch visits a permutation seeded by (seed, epoch); every step takes the next
    `batch_size * world_size` indices and each rank its own slice of them, so ranks never
    share a sample within an epoch. The incomplete last global batch of an epoch is dropped.
    """

    def __init__(self, images: Tensor, seed: int, rank: int, world_size: int, batch_size: int):
        global_batch = batch_size * world_size
        if len(images) < global_batch:
            raise DataError(
                f"MNIST has {len(images)} images, fewer than one global batch of {global_batch}"
            )
        self.images, self.seed, self.rank, self.batch_size = images, seed, rank, batch_size
        self.global_batch = global_batch
        self.steps_per_epoch = len(images) // global_batch
        self._epoch, self._order = -1, torch.empty(0, dtype=torch.int64)

    def batch(self, step: int) -> Tensor:
        epoch, position = divmod(step - 1, self.steps_per_epoch)
        start = position * self.global_batch + self.rank * self.batch_size
        indices = self._order_of(epoch)[start : start + self.batch_size]
        return (self.images[indices].float() / _PIXEL_HALF_RANGE - 1).unsqueeze(1)

    def _order_of(self, epoch: int) -> Tensor:
        if epoch != self._epoch:
            generator = generator_for(self.seed, Stream.DATA_ORDER, epoch)
            self._epoch, self._order = epoch, torch.randperm(len(self.images), generator=generator)
        return self._order


def find_mnist_images(folder: Path) -> Path:
    """The images file in `folder`: a train file when there is one, else the t10k one."""
    if not folder.is_dir():
        raise DataError(f"{folder}: MNIST folder does not exist")
    found = sorted(path for path in folder.iterdir() if _MNIST_IMAGES.search(path.name))
    train = [path for path in found if path.name.startswith("train")]
    if not found:
        raise DataError(f"{folder}: no *-images-idx3-ubyte or *-images-idx3-ubyte.gz file")
    return (train or found)[0]


def load_mnist_images(folder: Path) -> Tensor:
    """MNIST images from the idx3 file in `folder`, as uint8 [N, 28, 28]."""
    path = find_mnist_images(folder)
    raw = _read_maybe_gzipped(path)
    if len(raw) < IDX3_HEADER.size:
        raise DataError(f"{path}: {len(raw)} bytes, too short for an idx3 header")
    magic, count, rows, columns = IDX3_HEADER.unpack_from(raw)
    if magic != IDX3_MAGIC:
        raise DataError(f"{path}: magic number {magic:#010x}, expected {IDX3_MAGIC:#010x} (idx3)")
    if (rows, columns) != (MNIST_SIDE, MNIST_SIDE) or count == 0:
        raise DataError(f"{path}: holds {count} images of {rows}x{columns}, expected 28x28")
    expected = IDX3_HEADER.size + count * rows * columns
    if len(raw) != expected:
        raise DataError(f"{path}: {len(raw)} bytes, but its header promises {expected}")
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=IDX3_HEADER.size)
    return torch.from_numpy(pixels.reshape(count, rows, columns).copy())


def _read_maybe_gzipped(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as file:
                return file.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot be read ({exc})") from exc


def open_data(spec: TrainSpec, data_path: Path | None, rank: int, world_size: int) -> BatchSource:
    """The batch source of `rank` for `spec`; batch size is batch_size // world_size, ≥ 1.

    `data_path` is the local folder of a file-based source (the caller fetches store keys);
    without it, `spec.data.path` is used.
    """
    batch_size = max(1, spec.train.batch_size // world_size)
    return _OPENERS[spec.data.source](spec, data_path, rank, world_size, batch_size)


def _open_ring8(
    spec: TrainSpec, data_path: Path | None, rank: int, world_size: int, batch_size: int
) -> BatchSource:
    return Ring8Source(spec.train.seed, rank, batch_size)


def _open_mnist(
    spec: TrainSpec, data_path: Path | None, rank: int, world_size: int, batch_size: int
) -> BatchSource:
    folder = data_path or (Path(spec.data.path) if spec.data.path else None)
    if folder is None:
        raise DataError("MNIST from the artifact store must be fetched first: pass data_path")
    images = load_mnist_images(folder)
    return MnistSource(images, spec.train.seed, rank, world_size, batch_size)


_Opener = Callable[[TrainSpec, Path | None, int, int, int], BatchSource]
# Keyed by `DataSpec.source`.
_OPENERS: dict[str, _Opener] = {"toy:ring8": _open_ring8, "mnist": _open_mnist}
