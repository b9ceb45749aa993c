"""Mode coverage of samples from a mixture of Gaussians (the 2-D benchmarks of VEEGAN/PacGAN),
and the bootstrap that puts an interval beside each histogram figure.

A sample is *high quality* when it lies within 3 standard deviations of its nearest mode; a
mode is *covered* when at least one high-quality sample is nearest to it. The KL divergence of
the high-quality samples' mode histogram from uniform shows how evenly the modes are hit.

Every such figure is a function of a histogram (samples per mode, and off-mode), so
resampling the n samples with replacement is a multinomial draw of n over the histogram's
shares: `bootstrap_histograms` makes the replicates and `percentile_interval` reads a figure's
95% interval off them (the classifier's class figures use the same two): where the figure
would fall on another draw of as many samples. A KL measured on n samples over K cells reads
high by about (K - 1) / 2n (0.025 at 20 samples a cell), and so do its replicates: read on a
few samples, it and its interval say little of the generator (the alarm does not judge it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

# "Within 3 standard deviations": the papers' threshold for a high-quality sample.
QUALITY_STDS = 3.0
# Bootstrap replicates behind an interval: the ends of a 95% interval from 1,000 move by
# about a tenth of its width between seeds, and 1,000 draws of 2,500 cost about 10 ms.
BOOTSTRAP_DRAWS = 1000
# The share of replicates an interval holds (its ends: the 2.5th and 97.5th percentiles).
INTERVAL_LEVEL = 0.95
# Fixed, so two evaluations of one generator give the same intervals too.
BOOTSTRAP_SEED = 15_485_863


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
    value = float(kl_from_uniform_rows(counts.reshape(1, -1))[0])
    return value if math.isfinite(value) else None


def jsd_from_uniform(counts: Tensor) -> float:
    """Jensen-Shannon divergence (nats) of the histogram from uniform: bounded by ln 2, and
    finite even when modes are empty, unlike the KL."""
    total = float(counts.sum())
    if total == 0:
        return math.log(2)
    p = counts / total
    u = torch.full_like(p, 1.0 / len(counts))
    m = (p + u) / 2
    return float(0.5 * _kl(p, m) + 0.5 * _kl(u, m))


def _kl(p: Tensor, q: Tensor) -> Tensor:
    nonzero = p > 0
    return (p[nonzero] * (p[nonzero] / q[nonzero]).log()).sum()


def kl_from_uniform_rows(counts: Tensor) -> Tensor:
    """`kl_from_uniform` of each row of `counts` [B, K]; NaN for an empty row."""
    return kl_between_rows(counts, torch.full((counts.shape[1],), 1.0 / counts.shape[1]))


def kl_between_rows(counts: Tensor, reference: Tensor) -> Tensor:
    """KL (nats) of each row of `counts` [B, K], as shares, from the distribution
    `reference` [K]; NaN for an empty row."""
    counts = counts.double()
    totals = counts.sum(dim=1, keepdim=True)
    shares = counts / totals
    ratio = shares / reference.double().clamp_min(1e-12)
    terms = torch.where(shares > 0, shares * ratio.log(), torch.zeros_like(shares))
    return torch.where(totals[:, 0] > 0, terms.sum(dim=1), torch.full_like(totals[:, 0], math.nan))


def bootstrap_histograms(cells: Tensor, draws: int = BOOTSTRAP_DRAWS) -> Tensor:
    """`draws` bootstrap replicates [draws, C] of a histogram of n samples over C cells: the
    histogram of n samples drawn with replacement from those counted (a multinomial of n
    over the observed shares). Seeded by BOOTSTRAP_SEED, and drawn by numpy, so a run's own
    random streams are untouched."""
    counts = np.asarray(cells.detach().cpu().double().numpy()).round().astype(np.int64)
    total = int(counts.sum())
    if total == 0:
        return torch.zeros(draws, len(counts), dtype=torch.float64)
    replicates = np.random.default_rng(BOOTSTRAP_SEED).multinomial(total, counts / total, draws)
    return torch.from_numpy(replicates).double()


def percentile_interval(values: Tensor, whole: bool = False) -> list[float] | None:
    """The INTERVAL_LEVEL percentile interval [low, high] of bootstrap replicates of a figure
    (NaN replicates, where the figure is undefined, left out); None when most are undefined.
    `whole`: a count, whose ends are replicates' values rather than interpolated."""
    kept = values[torch.isfinite(values)].double()
    if len(kept) * 2 < len(values) or not len(kept):
        return None
    tail = (1 - INTERVAL_LEVEL) / 2
    ends = torch.quantile(
        kept, torch.tensor([tail, 1 - tail], dtype=torch.float64),
        interpolation="nearest" if whole else "linear",
    )  # fmt: skip
    return [int(e) for e in ends] if whole else [float(e) for e in ends]


def mode_intervals(counts: Tensor, samples: int) -> dict[str, list[float] | None]:
    """The 95% bootstrap intervals of the mode figures of `samples` samples whose
    high-quality ones fall into modes as `counts` [K]: `modes_covered_interval`,
    `high_quality_interval`, `kl_from_uniform_interval`."""
    off_mode = torch.tensor([max(0.0, samples - float(counts.sum()))], dtype=torch.float64)
    replicates = bootstrap_histograms(torch.cat([counts.double(), off_mode]))
    per_mode = replicates[:, :-1]
    return {
        "modes_covered_interval": percentile_interval((per_mode > 0).sum(dim=1).double(), True),
        "high_quality_interval": percentile_interval(per_mode.sum(dim=1) / max(1, samples)),
        "kl_from_uniform_interval": percentile_interval(kl_from_uniform_rows(per_mode)),
    }
