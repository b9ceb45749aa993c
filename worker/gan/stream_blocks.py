"""Random draws for many steps at once, from one seeded generator per block of draws.

Seeding a fresh generator for every step's data and latents (hashing the seed parts, then a
generator) cost about 10 µs per stream and step; on a small 2-D MLP whose whole step is
under 10 ms, that and drawing a few hundred numbers at a time was 2-3% of the step
(bench.train_overhead). A `BlockStream` draws `DRAWS_PER_BLOCK` draws' rows in one go from a
generator seeded by (job seed, stream, block, rank) and serves draw d its slice of block
(d - 1) // DRAWS_PER_BLOCK. The rows of a draw are still a pure function of (job seed,
stream, draw, rank): a run resumed at any step draws its block afresh and goes on bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from worker.gan.seeding import Stream, generator_for

# Draws made at once: the seeding is paid once per 64 steps (well under 1% of the smallest
# step), while a block of the largest latents we train (512 dims, batch 256) stays at 32 MiB.
DRAWS_PER_BLOCK = 64

# What a stream draws: (how many rows, from which generator) -> a tensor of that many rows.
Sampler = Callable[[int, torch.Generator], Tensor]


class BlockStream:
    """`rows_per_draw` rows for each draw (numbered from 1) of one (seed, stream, rank)."""

    def __init__(
        self, sample: Sampler, rows_per_draw: int, seed: int, stream: Stream, rank: int
    ) -> None:
        self.sample, self.rows_per_draw = sample, rows_per_draw
        self.seed, self.stream, self.rank = seed, stream, rank
        self._block, self._rows = -1, torch.empty(0)

    def rows(self, draw: int) -> Tensor:
        """Draw `draw`'s rows: a view into its block, to read and not to write in place."""
        block, index = divmod(draw - 1, DRAWS_PER_BLOCK)
        if block != self._block:
            generator = generator_for(self.seed, self.stream, block, self.rank)
            self._block = block
            self._rows = self.sample(self.rows_per_draw * DRAWS_PER_BLOCK, generator)
        start = index * self.rows_per_draw
        return self._rows[start : start + self.rows_per_draw]
