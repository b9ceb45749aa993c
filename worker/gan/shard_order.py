"""Which images of a sharded dataset each rank trains on at each draw: a pure function of
(seed, epoch, rank, world size), computed without a list of the whole dataset.

An epoch is one pass over the images in a seeded order that a stream of shards can serve:
1. the shards are shuffled (seeded by seed and epoch);
2. taken `SHUFFLE_SHARDS` at a time, each such window's images are shuffled together (seeded
   by seed, epoch and window), so a batch mixes several shards, not one shard's neighbours;
3. the epoch's order is the windows' orders one after another.
Draw d then takes positions as `data.ArraySource` does: the next `batch_size * world_size`
of the epoch, rank r its own `batch_size` of them, so ranks never share an image within an
epoch and together cover all but the last incomplete global batch. Memory is one window's
order and the shard counts, whatever the dataset's size; a resumed run (or a rank count
changed at resume) computes the same global order from the numbers alone.
"""

from __future__ import annotations

import bisect
from itertools import accumulate

import torch

from worker.gan.errors import DataError
from worker.gan.seeding import Stream, generator_for

# Shards whose images are shuffled together: with 4096-image shards, a window of 4 mixes
# 16,384 images per batch draw (webdataset's shuffle buffer is typically 1,000-10,000),
# while a reader keeps only 4 shards open.
SHUFFLE_SHARDS = 4


class ShardOrder:
    """The (shard, member) pairs of this rank's batch at each draw (numbered from 1)."""

    def __init__(
        self,
        counts: list[int],
        seed: int,
        rank: int,
        world_size: int,
        batch_size: int,
        shuffle_shards: int = SHUFFLE_SHARDS,
    ) -> None:
        total, global_batch = sum(counts), batch_size * world_size
        if total < global_batch:
            raise DataError(
                f"the shards hold {total} images, fewer than one global batch of {global_batch}"
            )
        self.counts, self.seed, self.rank, self.batch_size = counts, seed, rank, batch_size
        self.global_batch, self.shuffle_shards = global_batch, shuffle_shards
        self.steps_per_epoch = total // global_batch
        self._epoch = -1
        self._windows: list[list[int]] = []  # shard numbers of each window, this epoch
        self._window_starts: list[int] = []  # epoch position of each window's first image
        self._window_orders: dict[int, list[tuple[int, int]]] = {}

    def draw(self, draw: int) -> list[tuple[int, int]]:
        """(shard number, member number within the shard) of each image of draw `draw`."""
        epoch, within = divmod(draw - 1, self.steps_per_epoch)
        self._enter(epoch)
        start = within * self.global_batch + self.rank * self.batch_size
        return [self._at(position) for position in range(start, start + self.batch_size)]

    def _enter(self, epoch: int) -> None:
        if epoch == self._epoch:
            return
        shards = torch.randperm(
            len(self.counts), generator=generator_for(self.seed, Stream.SHARD_ORDER, epoch)
        ).tolist()
        size = self.shuffle_shards
        self._windows = [shards[i : i + size] for i in range(0, len(shards), size)]
        sizes = [sum(self.counts[shard] for shard in window) for window in self._windows]
        self._window_starts = [0, *accumulate(sizes)][:-1]
        self._epoch, self._window_orders = epoch, {}

    def _at(self, position: int) -> tuple[int, int]:
        window = bisect.bisect_right(self._window_starts, position) - 1
        return self._window_order(window)[position - self._window_starts[window]]

    def _window_order(self, window: int) -> list[tuple[int, int]]:
        """The window's images in their shuffled order; the last two windows are kept (a
        global batch spans at most two)."""
        if window not in self._window_orders:
            pairs = [
                (shard, member)
                for shard in self._windows[window]
                for member in range(self.counts[shard])
            ]
            generator = generator_for(self.seed, Stream.SHARD_SAMPLES, self._epoch, window)
            order = torch.randperm(len(pairs), generator=generator).tolist()
            while len(self._window_orders) >= 2:
                del self._window_orders[min(self._window_orders)]
            self._window_orders[window] = [pairs[i] for i in order]
        return self._window_orders[window]
