"""Pictures of an evaluation a researcher can read (matplotlib, headless, PNG bytes).

2-D mixtures: the data as a grey density beneath, generated points coloured by whether they
are high quality (within 3 std of a centre) or off-mode, every centre with its 3-std circle
and its count of high-quality samples, axes with numbers, and the step and figures in the
title; points outside the view are counted, never dropped silently.

1-D (`toy:gauss1d`): the classic picture of a critic at work: the data density, the
generator's density, the critic D(x) and its slope dD/dx over x, on one figure with two axes.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: workers have no display

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Circle
from torch import Tensor

from worker.gan.mode_coverage import QUALITY_STDS
from worker.gan.toydata import ToyDistribution

DPI = 100
GOOD, OFF = "#1a9850", "#d73027"


def plane_png(
    samples: Tensor,
    real: Tensor,
    distribution: ToyDistribution,
    metrics: dict[str, Any],
    step: int,
) -> bytes:
    """The 2-D picture of one evaluation (see the module docstring)."""
    points, reference = samples.double().numpy(), real.double().numpy()
    modes = distribution.modes.double().numpy()
    margin = 0.35 * (modes.max() - modes.min()) + 10 * distribution.std
    low, high = modes.min() - margin, modes.max() + margin
    figure, axes = plt.subplots(figsize=(7, 7), dpi=DPI)
    axes.hist2d(
        reference[:, 0], reference[:, 1], bins=160, range=[[low, high], [low, high]],
        cmap="Greys", cmin=1, alpha=0.6,
    )  # fmt: skip
    distances = np.linalg.norm(points[:, None, :] - modes[None, :, :], axis=2)
    good = distances.min(axis=1) <= QUALITY_STDS * distribution.std
    for mask, colour, label in ((good, GOOD, "high quality"), (~good, OFF, "off-mode")):
        axes.scatter(points[mask, 0], points[mask, 1], s=3, c=colour, alpha=0.45, label=label)
    counts = metrics.get("mode_counts") or [0] * len(modes)
    for (x, y), count in zip(modes, counts, strict=True):
        axes.add_patch(Circle((x, y), QUALITY_STDS * distribution.std, fill=False, lw=0.8))
        axes.plot(x, y, "k+", ms=7)
        axes.annotate(str(count), (x, y), xytext=(4, 4), textcoords="offset points", fontsize=8)
    outside = int(((points < low) | (points > high)).any(axis=1).sum())
    axes.set_xlim(low, high)
    axes.set_ylim(low, high)
    axes.set_aspect("equal")
    axes.set_xlabel("x")
    axes.set_ylabel("y")
    axes.legend(loc="upper right", fontsize=8, markerscale=3)
    kl = metrics.get("kl_from_uniform")
    axes.set_title(
        f"step {step}: {metrics['modes_covered']}/{metrics['mode_count']} modes, "
        f"{100 * metrics['high_quality']:.1f}% high quality, "
        + (f"KL {kl:.3f}" if kl is not None else "KL undefined (no high-quality sample)")
        + (f"\n{outside} of {len(points)} generated points outside the view" if outside else ""),
        fontsize=10,
    )
    return _png(figure)


def line_png(
    samples: Tensor,
    real: Tensor,
    critic: Callable[[Tensor], Tensor] | None,
    metrics: dict[str, Any],
    step: int,
) -> bytes:
    """The 1-D picture: densities of data and generator, and the critic with its slope."""
    generated, reference = samples.double().flatten().numpy(), real.double().flatten().numpy()
    both = np.concatenate([generated, reference])
    low, high = np.percentile(both, 0.5) - 0.5, np.percentile(both, 99.5) + 0.5
    figure, density_axes = plt.subplots(figsize=(8, 4.5), dpi=DPI)
    bins = np.linspace(low, high, 120)
    density_axes.hist(reference, bins=bins, density=True, color="0.6", alpha=0.6, label="data")
    density_axes.hist(generated, bins=bins, density=True, color=GOOD, alpha=0.5, label="generator")
    density_axes.set_xlabel("x")
    density_axes.set_ylabel("density")
    density_axes.set_xlim(low, high)
    handles, labels = density_axes.get_legend_handles_labels()
    if critic is not None:
        grid = torch.linspace(float(low), float(high), 400, dtype=torch.float32)[:, None]
        grid.requires_grad_(True)
        scores = critic(grid).reshape(-1)
        (slope,) = torch.autograd.grad(scores.sum(), grid)
        critic_axes = density_axes.twinx()
        xs = grid.detach().numpy().ravel()
        critic_axes.plot(xs, scores.detach().numpy(), color="#4575b4", label="critic D(x)")
        critic_axes.plot(xs, slope.numpy().ravel(), color="#fc8d59", ls="--", label="dD/dx")
        critic_axes.axhline(0.0, color="0.3", lw=0.5)
        critic_axes.set_ylabel("critic D(x), dD/dx")
        more_handles, more_labels = critic_axes.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    density_axes.legend(handles, labels, loc="upper left", fontsize=8)
    outside = int(((generated < low) | (generated > high)).sum())
    w1 = metrics.get("w1")
    density_axes.set_title(
        f"step {step}: W1 to the data "
        + (f"{w1:.4f}" if w1 is not None else "undefined")
        + (f"; {outside} generated points outside the view" if outside else ""),
        fontsize=10,
    )
    return _png(figure)


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
