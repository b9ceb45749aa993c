"""Toy distributions generated in memory: ring8, grid25 (points in the plane), gauss1d (a line).

Each is a mixture of equal-weight isotropic Gaussians, so mode-coverage metrics read every one
the same way: `modes` (the centres, [K, d]) and `std`. A batch is computed from (seed, step,
rank) alone (`stream_blocks`: drawn 64 steps at a time), so data order repeats exactly and a
resumed run needs no saved sampler state.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from worker.gan.seeding import Stream
from worker.gan.stream_blocks import BlockStream

# PacGAN's ring: 8 Gaussians of std 0.01 on the unit circle.
RING8_MODE_COUNT = 8
RING8_RADIUS = 1.0
RING8_STD = 0.01
# The grid of Unrolled GAN / VEEGAN / PacGAN: 25 Gaussians of std 0.05 at {-4, -2, 0, 2, 4}².
GRID25_COORDINATES = (-4.0, -2.0, 0.0, 2.0, 4.0)
GRID25_STD = 0.05
# A single 1-D Gaussian N(3, 0.5²): off the origin and wider than a fresh generator's output,
# so a model that has learnt nothing (outputs near 0, spread near 0.1) is plainly wrong.
GAUSS1D_MEAN = 3.0
GAUSS1D_STD = 0.5


@dataclass(frozen=True)
class ToyDistribution:
    """Equal-weight Gaussians with centres `modes` [K, d] and one standard deviation."""

    modes: Tensor
    std: float

    @property
    def dim(self) -> int:
        return int(self.modes.shape[1])

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """`n` points [n, d]: a uniformly chosen mode plus N(0, std²) noise."""
        chosen = self.modes[torch.randint(0, len(self.modes), (n,), generator=generator)]
        return chosen + self.std * torch.randn(n, self.dim, generator=generator)


def ring8_modes() -> Tensor:
    """The 8 mode centres [8, 2]: angles 2πk/8 for k = 0..7 (linspace(0, 2π, 8) repeats one)."""
    angles = torch.arange(RING8_MODE_COUNT, dtype=torch.float64) * (2 * math.pi / RING8_MODE_COUNT)
    return (RING8_RADIUS * torch.stack([angles.cos(), angles.sin()], dim=1)).float()


def grid25_modes() -> Tensor:
    """The 25 mode centres [25, 2], row by row: (-4, -4), (-4, -2), ..., (4, 4)."""
    return torch.tensor(list(itertools.product(GRID25_COORDINATES, repeat=2)))


def gauss1d_modes() -> Tensor:
    """The single centre [1, 1] of gauss1d."""
    return torch.tensor([[GAUSS1D_MEAN]])


def toy_distribution(source: str) -> ToyDistribution:
    """The distribution of a `toy:*` source; KeyError for any other source."""
    makers = {
        "toy:ring8": lambda: ToyDistribution(ring8_modes(), RING8_STD),
        "toy:grid25": lambda: ToyDistribution(grid25_modes(), GRID25_STD),
        "toy:gauss1d": lambda: ToyDistribution(gauss1d_modes(), GAUSS1D_STD),
    }
    return makers[source]()


def ring8_sample(n: int, generator: torch.Generator) -> Tensor:
    """`n` ring8 points [n, 2]: a uniformly chosen mode plus N(0, RING8_STD²) noise."""
    return toy_distribution("toy:ring8").sample(n, generator)


class ToySource:
    """Fresh points every step, a function of (seed, step, rank) alone (a `BlockStream`)."""

    def __init__(self, distribution: ToyDistribution, seed: int, rank: int, batch_size: int):
        self.distribution = distribution
        self.seed, self.rank, self.batch_size = seed, rank, batch_size
        self._points = BlockStream(distribution.sample, batch_size, seed, Stream.DATA, rank)

    def batch(self, step: int) -> Tensor:
        return self._points.rows(step)


class Ring8Source(ToySource):
    def __init__(self, seed: int, rank: int, batch_size: int):
        super().__init__(toy_distribution("toy:ring8"), seed, rank, batch_size)


class Grid25Source(ToySource):
    def __init__(self, seed: int, rank: int, batch_size: int):
        super().__init__(toy_distribution("toy:grid25"), seed, rank, batch_size)


class Gauss1dSource(ToySource):
    def __init__(self, seed: int, rank: int, batch_size: int):
        super().__init__(toy_distribution("toy:gauss1d"), seed, rank, batch_size)


# The batch source of each `toy:*` source, built from (seed, rank, batch_size).
TOY_SOURCES: dict[str, type[Ring8Source | Grid25Source | Gauss1dSource]] = {
    "toy:ring8": Ring8Source,
    "toy:grid25": Grid25Source,
    "toy:gauss1d": Gauss1dSource,
}
