"""The exact 1-D Wasserstein distance between two samples on a line: what a 1-D GAN (the
Gaussian-to-Gaussian WGAN) is scored by against its data."""

from __future__ import annotations

import torch
from torch import Tensor


def w1_between(x: Tensor, y: Tensor) -> float:
    """Exact W1 between two empirical distributions on a line: the integral over u in (0, 1)
    of |F_x^-1(u) - F_y^-1(u)|, evaluated at the union of both samples' quantile breaks."""
    xs, ys = torch.sort(x.double()).values, torch.sort(y.double()).values
    breaks = torch.unique(
        torch.cat(
            [
                torch.arange(1, len(xs) + 1, dtype=torch.float64) / len(xs),
                torch.arange(1, len(ys) + 1, dtype=torch.float64) / len(ys),
            ]
        )
    )
    widths = torch.diff(breaks, prepend=torch.zeros(1, dtype=torch.float64))
    middle = breaks - widths / 2
    qx = xs[torch.clamp((middle * len(xs)).long(), max=len(xs) - 1)]
    qy = ys[torch.clamp((middle * len(ys)).long(), max=len(ys) - 1)]
    return float((widths * (qx - qy).abs()).sum())
