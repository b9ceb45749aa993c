"""Mode coverage of samples from a mixture of Gaussians (the 2-D benchmarks of VEEGAN/PacGAN).

A sample is *high quality* when it lies within 3 standard deviations of its nearest mode; a
mode is *covered* when at least one high-quality sample is nearest to it. The KL divergence of
the high-quality samples' mode histogram from uniform shows how evenly the modes are hit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

# "Within 3 standard deviations": the papers' threshold for a high-quality sample.
QUALITY_STDS = 3.0


@dataclass(frozen=True)
class ModeCoverage:
    modes_covered: int
    mode_count: int
    high_quality_fraction: float
    kl_from_uniform: float


def mode_coverage(samples: Tensor, modes: Tensor, std: float) -> ModeCoverage:
    counts, good = mode_histogram(samples, modes, std)
    covered = int((counts > 0).sum())
    fraction = float(good.double().mean()) if len(samples) else 0.0
    kl = kl_from_uniform(counts)
    return ModeCoverage(covered, len(modes), fraction, math.inf if kl is None else kl)


def mode_histogram(samples: Tensor, modes: Tensor, std: float) -> tuple[Tensor, Tensor]:
    """(high-quality samples per mode [K], which samples are high quality [n])."""
    flat = samples.double().reshape(len(samples), -1)
    distances = torch.cdist(flat, modes.double())
    nearest_distance, nearest_mode = distances.min(dim=1)
    good = nearest_distance <= QUALITY_STDS * std
    return torch.bincount(nearest_mode[good], minlength=len(modes)).double(), good


def kl_from_uniform(counts: Tensor) -> float | None:
    """KL (nats) of the histogram from uniform: 0 when even, ln K when one mode takes all;
    None when it is empty (no high-quality sample: undefined)."""
    total = float(counts.sum())
    if total == 0:
        return None
    p = counts / total
    nonzero = p > 0
    return float((p[nonzero] * (p[nonzero] * len(counts)).log()).sum())
