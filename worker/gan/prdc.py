"""Precision, recall, density and coverage of generated samples against real ones, with an
interval for each (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for
Generative Models"; precision and recall as Kynkäänniemi et al. 2019 define them).

Each real point r_j has a ball of radius R_j, its distance to its k-th nearest real
neighbour; each generated point f_i has one of radius F_i among the generated. Then

- precision: the share of generated points inside some real ball (fidelity);
- recall: the share of real points inside some generated ball (diversity);
- density: the mean number of real balls holding a generated point, divided by k (about 1
  when the two sets are alike, above 1 where samples crowd into dense parts of the data);
- coverage: the share of real balls holding at least one generated point (diversity, robust
  to outliers among the generated points: a part of the data the generator misses leaves
  its real points uncovered whatever the generator does elsewhere).

Pure math on tensors of points [n, d] (any d), Euclidean distances in float64;
`worker/gan/point_scores.py` applies it to uploaded point data.

The interval (`figures_over_draws`) comes from several independent draws of generated points
scored against one fixed real set: the figure is their mean, and the interval the mean's
95% t-interval. It is the uncertainty of the figure for this generator against this real
set, which is what comparing one run's evaluations needs (they all use the same real
set); the noise of which real points were drawn is not in it. A plain bootstrap does not
work here: a resample holds about 63% of the distinct points, so fewer balls and fewer
distinct samples (every figure biased low: measured on two Gaussians of 2,000 points,
precision 0.993 with a resample-both-sets interval of [0.947, 0.979]), and its repeated
points are one another's nearest neighbours at distance 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

# Naeem et al.'s recommended neighbourhood size.
NEIGHBOURS = 5
FIGURES = ("precision", "recall", "density", "coverage")
# Two-sided 97.5% quantiles of Student's t by degrees of freedom (draws - 1), for the
# interval of a mean over a few draws; 1.96 beyond the table.
_T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
          9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131,
          19: 2.093, 24: 2.064, 29: 2.045}  # fmt: skip


def pairwise_distances(a: Tensor, b: Tensor) -> Tensor:
    """Euclidean distances [len(a), len(b)] computed coordinate-wise, not through a matrix
    product: exact 0 for equal points, and faster for points of few dimensions."""
    return torch.cdist(a.double(), b.double(), compute_mode="donot_use_mm_for_euclid_dist")


def kth_neighbour_distance(points: Tensor, k: int = NEIGHBOURS) -> Tensor:
    """Each point's distance to its k-th nearest other point (the point itself excluded)."""
    if len(points) <= k:
        raise ValueError(f"k-NN balls with k = {k} need more than {k} points, got {len(points)}")
    distances = pairwise_distances(points, points)
    # k + 1 smallest: each point is its own nearest (topk is several times faster than
    # kthvalue on rows of thousands).
    return distances.topk(k + 1, dim=1, largest=False).values[:, k]


@dataclass(frozen=True)
class RealSet:
    """Real points and their k-NN radii, computed once and scored against many times."""

    points: Tensor  # [R, d] float64
    radii: Tensor  # [R]
    k: int

    @classmethod
    def of(cls, points: Tensor, k: int = NEIGHBOURS) -> RealSet:
        points = points.double().reshape(len(points), -1)
        return cls(points, kth_neighbour_distance(points, k), k)

    def figures(self, fake: Tensor) -> dict[str, float]:
        """Precision, recall, density and coverage of `fake` [F, d] against these points."""
        fake = fake.double().reshape(len(fake), -1)
        fake_radii = kth_neighbour_distance(fake, self.k)
        fake_to_real = pairwise_distances(fake, self.points)  # [F, R]
        inside_real = fake_to_real <= self.radii[None, :]  # f_i in r_j's ball
        inside_fake = fake_to_real <= fake_radii[:, None]  # r_j in f_i's ball
        return {
            "precision": float(inside_real.any(dim=1).double().mean()),
            "recall": float(inside_fake.any(dim=0).double().mean()),
            "density": float(inside_real.double().sum(dim=1).mean() / self.k),
            "coverage": float(inside_real.any(dim=0).double().mean()),
        }


def prdc(real: Tensor, fake: Tensor, k: int = NEIGHBOURS) -> dict[str, float]:
    """Precision, recall, density and coverage of `fake` [F, d] against `real` [R, d]."""
    return RealSet.of(real, k).figures(fake)


@dataclass(frozen=True)
class Estimate:
    """A figure's mean over draws and its 95% interval (equal ends for a single draw)."""

    value: float
    low: float
    high: float


def figures_over_draws(real: RealSet, fakes: Sequence[Tensor]) -> dict[str, Estimate]:
    """Each figure's mean over independent draws of generated points, with the mean's 95%
    t-interval (clipped to the figure's range: [0, 1], density >= 0)."""
    scored = [real.figures(fake) for fake in fakes]
    estimates = {}
    for name in FIGURES:
        values = torch.tensor([s[name] for s in scored], dtype=torch.float64)
        mean = float(values.mean())
        if len(values) < 2:
            estimates[name] = Estimate(mean, mean, mean)
            continue
        half = t_quantile_975(len(values) - 1) * float(values.std()) / math.sqrt(len(values))
        top = math.inf if name == "density" else 1.0
        estimates[name] = Estimate(mean, max(0.0, mean - half), min(top, mean + half))
    return estimates


def t_quantile_975(degrees: int) -> float:
    """Student's t 97.5% quantile: the table's entry at or below `degrees` (conservative
    between entries), 1.96 past 29."""
    if degrees > max(_T_975):
        return 1.96
    return _T_975[max(d for d in _T_975 if d <= degrees)]
