"""A rank's batches streamed from a sharded dataset through a torch DataLoader whose worker
processes decode ahead of the step.

`ShardSource` is a `data.BatchSource`: the batch of draw d is the images `ShardOrder` names
for d, whoever decodes them. The DataLoader's workers take draws in turn (worker w of W
decodes draws start + w, start + w + W, ...), and the DataLoader hands an iterable
dataset's items back round-robin, worker by worker, so batches arrive in draw order with
`prefetch` of them decoded ahead per worker. Asking for any other draw than the next (a
resumed run's first) restarts the stream there. Nothing but the draw number decides a
batch, so 0, 1 or 4 workers give the same bits, and a resumed run goes on bit for bit.

Memory: each process keeps a window's order, a few open shards' member offsets and its
prefetched batches, however many images the shards hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from shared.datafiles.confine import roots_in_force
from shared.datafiles.errors import DataFileError
from shared.datafiles.shard_index import ShardIndex
from worker.gan.errors import DataError
from worker.gan.shard_order import ShardOrder
from worker.gan.shard_reader import ShardReader

# Loader processes per rank when the spec leaves data.loader_workers open: two keep a small
# model's step fed on a laptop-sized node without taking its cores from the step itself.
LOADER_WORKERS = 2
# Batches each worker decodes ahead: two (torch's default) hide one slow batch.
PREFETCH_BATCHES = 2
# uint8 pixels [0, 255] to the generator's tanh range [-1, 1] (as data.ArraySource).
_PIXEL_HALF_RANGE = 127.5


def loader_plan(requested: int, threads: int) -> tuple[int, int]:
    """(loader processes, torch threads left to the rank) within the rank's share `threads`
    of the node's cores: a worker decodes on one thread (DataLoader sets it so), so workers
    plus the rank's threads never exceed the share; a one-thread rank loads in-process."""
    workers = max(0, min(requested, threads - 1))
    return workers, max(1, threads - workers)


@dataclass(frozen=True)
class _Failed:
    """A worker's DataFileError, carried back as a value: re-raised by the DataLoader it
    would come wrapped in a worker traceback instead of the message a user can act on."""

    message: str


@dataclass(frozen=True)
class _Layout:
    """What every process of the stream needs to compute and read a draw."""

    folder: Path
    index: ShardIndex
    seed: int
    rank: int
    world_size: int
    batch_size: int
    size: int
    channels: int
    labelled: bool
    roots: tuple[list[Path], str] | None


class _ShardBatches(IterableDataset):
    """(images uint8 [B, C, H, W], labels int64 [B] or None) of draws start, start + 1, ...;
    in a DataLoader worker, only that worker's share of them (see the module docstring)."""

    def __init__(self, layout: _Layout, start: int) -> None:
        self.layout, self.start = layout, start

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray | None] | _Failed]:
        worker = get_worker_info()
        first, stride = (0, 1) if worker is None else (worker.id, worker.num_workers)
        layout = self.layout
        order = ShardOrder(
            layout.index.counts, layout.seed, layout.rank, layout.world_size, layout.batch_size
        )
        reader = ShardReader(
            layout.folder, layout.index, layout.size, layout.channels, layout.roots
        )
        draw = self.start + first
        try:
            while True:
                pairs = order.draw(draw)
                try:
                    labels = reader.labels(pairs) if layout.labelled else None
                    yield reader.images(pairs), labels
                except DataFileError as exc:
                    yield _Failed(str(exc))
                    return
                draw += stride
        finally:
            reader.close()


class ShardSource:
    """Batches of one rank from a sharded dataset, by draw number (see the module docstring).

    `sample_shape` is the resolved (channels, size, size); `workers` loader processes decode
    (0: the rank itself does); `loader_plan` says how many a rank can afford.
    """

    def __init__(
        self,
        folder: Path,
        index: ShardIndex,
        *,
        sample_shape: tuple[int, ...],
        seed: int,
        rank: int,
        world_size: int,
        batch_size: int,
        workers: int = LOADER_WORKERS,
        labelled: bool = False,
    ) -> None:
        channels, size, _ = sample_shape
        # Checked before any process starts: too few images is the caller's error, not a
        # worker's.
        order = ShardOrder(index.counts, seed, rank, world_size, batch_size)
        self.steps_per_epoch = order.steps_per_epoch
        self.batch_size = batch_size
        self._layout = _Layout(
            folder,
            index,
            seed,
            rank,
            world_size,
            batch_size,
            size,
            channels,
            labelled,
            roots_in_force(),
        )
        self.workers = workers
        self._iterator: Iterator[tuple[np.ndarray, np.ndarray | None] | _Failed] | None = None
        self._next_draw = -1
        self._draw, self._images = -1, torch.empty(0)
        self._labels: Tensor | None = None

    def batch(self, step: int) -> Tensor:
        """The batch of draw `step`, float in [-1, 1], [B, C, H, W]."""
        self._take(step)
        return self._images.float() / _PIXEL_HALF_RANGE - 1

    def batch_labels(self, step: int) -> Tensor:
        """The class labels of `batch(step)`'s images, in the same order (int64 [B])."""
        self._take(step)
        if self._labels is None:
            raise DataError("the data has no labels: only a conditional model asks for them")
        return self._labels

    def close(self) -> None:
        """Stop the loader's worker processes (dropping the source does too)."""
        self._iterator, self._next_draw = None, -1

    def _take(self, draw: int) -> None:
        if draw == self._draw:
            return
        if self._iterator is None or draw != self._next_draw:
            self._iterator = iter(self._loader(draw))
        item = next(self._iterator)
        if isinstance(item, _Failed):
            self.close()
            raise DataError(item.message)
        images, labels = item
        self._draw, self._next_draw = draw, draw + 1
        self._images = torch.as_tensor(images)
        self._labels = None if labels is None else torch.as_tensor(labels)

    def _loader(self, start: int) -> DataLoader:
        self.close()
        return DataLoader(
            _ShardBatches(self._layout, start),
            batch_size=None,
            num_workers=self.workers,
            prefetch_factor=PREFETCH_BATCHES if self.workers else None,
            # Its own generator: a DataLoader iterator draws its workers' base seed from the
            # one it is given, and from the global RNG without one, which would move the
            # run's RNG state (saved in checkpoints) at every restart. Nothing random happens
            # in the workers.
            generator=torch.Generator(),
        )
