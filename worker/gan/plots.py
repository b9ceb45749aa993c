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
    critic: Callable[[Tensor], Tensor] | None = None,
) -> bytes:
    """The 2-D picture of one evaluation (see the module docstring), over the discriminator's
    decision surface when `critic` is given."""
    points, reference = samples.double().numpy(), real.double().numpy()
    modes = distribution.modes.double().numpy()
    margin = 0.35 * (modes.max() - modes.min()) + 10 * distribution.std
    low, high = modes.min() - margin, modes.max() + margin
    figure, axes = plt.subplots(figsize=(8.2 if critic else 7, 7), dpi=DPI)
    if critic is not None:
        _decision_surface(figure, axes, critic, low, high)
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


# Points per side of the grid the decision surface is drawn from.
SURFACE_POINTS = 160


def _decision_surface(
    figure: Any, axes: Any, critic: Callable[[Tensor], Tensor], low: float, high: float
) -> None:
    """D's logit over the view as filled contours beneath the points, with a colour bar:
    where the discriminator believes real data lies, and so where it pulls the generator."""
    ticks = torch.linspace(float(low), float(high), SURFACE_POINTS, dtype=torch.float32)
    ys, xs = torch.meshgrid(ticks, ticks, indexing="ij")
    with torch.no_grad():
        scores = critic(torch.stack([xs.flatten(), ys.flatten()], dim=1)).reshape(xs.shape)
    values = scores.double().numpy()
    bound = float(np.nanpercentile(np.abs(values), 99)) or 1.0
    filled = axes.contourf(
        xs.numpy(), ys.numpy(), values, levels=np.linspace(-bound, bound, 21),
        cmap="PuOr_r", alpha=0.35, extend="both", zorder=0,
    )  # fmt: skip
    figure.colorbar(
        filled, ax=axes, fraction=0.046, pad=0.04, label="discriminator logit D(x)",
        ticks=np.linspace(-bound, bound, 5), format="%.2g",
    )  # fmt: skip


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


def _png(figure: Any, fit: bool = True) -> bytes:
    """The figure as PNG bytes; `fit` lays it out to its labels first (tight_layout: a draw
    of its own, most of a small figure's cost), where fixed margins do not fit it."""
    buffer = io.BytesIO()
    if fit:
        figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


# Evaluation figures drawn as curves, in this order, when a run has them.
CURVE_METRICS = (
    ("high_quality", "high quality (fraction)"),
    ("modes_covered", "modes covered"),
    ("kl_from_uniform", "KL of modes from uniform"),
    ("w1", "W1 to the data"),
    ("classes_covered", "digit classes covered"),
    ("class_kl", "class KL from the data's"),
    ("frechet_distance", "Fréchet distance (classifier features)"),
    ("spread", "spread of samples"),
)
# Loss statistics drawn together on the first panel, then the scores on the second.
LOSS_CURVES = ("Loss/D/loss", "Loss/G/loss", "Loss/VAE/elbo", "Loss/VAE/recon", "Loss/VAE/kl")
SCORE_CURVES = ("Loss/scores/real", "Loss/scores/fake", "Loss/D/reg")
MAX_CURVE_PANELS = 6


def curves_png(records: list[dict[str, Any]]) -> bytes | None:
    """Loss and metric curves over steps from a run's metrics.jsonl records (progress lines
    and `eval` lines); None when there is nothing to draw yet."""
    progress = [r for r in records if "eval" not in r]
    evaluations = [(r["step"], r["eval"]) for r in records if isinstance(r.get("eval"), dict)]
    panels: list[tuple[str, list[tuple[str, list[int], list[float]]]]] = []
    for title, names in (("losses", LOSS_CURVES), ("discriminator scores", SCORE_CURVES)):
        lines = [_series(progress, name) for name in names]
        lines = [line for line in lines if line[1]]
        if lines:
            panels.append((title, lines))
    for name, title in CURVE_METRICS:
        steps = [step for step, e in evaluations if _is_number(e.get(name))]
        values = [float(e[name]) for _, e in evaluations if _is_number(e.get(name))]
        if steps:
            panels.append((title, [(name, steps, values)]))
    panels = panels[:MAX_CURVE_PANELS]
    if not panels:
        return None
    columns = 2 if len(panels) > 1 else 1
    rows = -(-len(panels) // columns)
    # Fixed margins, fitting every panel's title, step axis and tick labels: curves are
    # redrawn at each checkpoint of a running job, and laying them out anew costs a draw.
    figure, grid = plt.subplots(
        rows,
        columns,
        figsize=(6 * columns, 3 * rows),
        dpi=DPI,
        squeeze=False,
        gridspec_kw={"left": 0.15 / columns, "right": 0.98, "bottom": 0.5 / (3 * rows),
                     "top": 1 - 0.3 / (3 * rows), "wspace": 0.3, "hspace": 0.45},
    )  # fmt: skip
    for axes, (title, lines) in zip(grid.flat, panels, strict=False):
        for name, steps, values in lines:
            axes.plot(steps, values, lw=1, marker="." if len(steps) < 30 else None, label=name)
        axes.set_title(title, fontsize=10)
        axes.set_xlabel("step")
        axes.grid(alpha=0.3)
        if len(lines) > 1:
            axes.legend(fontsize=8)
    for axes in list(grid.flat)[len(panels) :]:
        axes.set_visible(False)
    return _png(figure, fit=False)


def _series(records: list[dict[str, Any]], name: str) -> tuple[str, list[int], list[float]]:
    kept = [(r["step"], float(r[name])) for r in records if _is_number(r.get(name))]
    return name, [s for s, _ in kept], [v for _, v in kept]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def neighbourhood_png(
    radii: list[float], mean: list[float], spread: list[float], unit: str
) -> bytes:
    """How far a neighbourhood's images lie from its centre image, per radius."""
    figure, axes = plt.subplots(figsize=(6, 4), dpi=DPI)
    axes.errorbar(radii, mean, yerr=spread, marker="o", capsize=3)
    axes.set_xlabel("radius r of z + r·u (latent units)")
    axes.set_ylabel(f"distance from the centre image\n({unit})", fontsize=9)
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.set_title("mean distance from the centre per radius (bars: one std)", fontsize=10)
    return _png(figure)
