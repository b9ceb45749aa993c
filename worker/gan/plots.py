"""Pictures of an evaluation a researcher can read (matplotlib, headless, PNG bytes).

2-D mixtures: on the left the whole view: the data as a grey density beneath, every centre
with its 3-std circle and its count of high-quality samples, and the generated points on top,
coloured by whether they are high quality (within 3 std of a centre) or off-mode; on the right
every mode zoomed in to ±6 std, laid out as the modes lie, so the high-quality points a
narrow mode holds are seen however small it is on the left. A legend names every mark, the
axes have numbers and names, the step and figures are in the title, and points outside the
view are counted, never dropped silently.

1-D (`toy:gauss1d`): the classic picture of a critic at work: the true density (where it is
known; else a histogram of the data), the generator's histogram, the critic D(x) and its
slope dD/dx over x, on one figure with two axes.

A run's curves over steps are drawn by worker/gan/curves_plot.py, with this module's PNG
encoding (`figure_png`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: workers have no display

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.collections import PatchCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, Patch, Rectangle
from torch import Tensor

from worker.gan.mode_coverage import QUALITY_STDS
from worker.gan.point_pictures import gaussian_mixture_density
from worker.gan.toydata import ToyDistribution

DPI = 100
SIGMA = "\N{GREEK SMALL LETTER SIGMA}"  # a standard deviation, in labels
GOOD, OFF = "#1a9850", "#d73027"
# How far each zoomed mode reaches from its centre, in stds (the 3-std circle sits halfway),
# the gap between cells (stds) and the grey density's pixels per cell.
ZOOM_STDS, ZOOM_GAP_STDS, ZOOM_PIXELS = 6.0, 1.2, 60
# The 2-D picture's layout in inches: the main view's side, the zoomed modes' block width, and
# room for the title, the tick labels and axis names, the colour bar, between the blocks, and
# from the zoomed block's bottom to the legend beneath it.
MAIN_SIDE, ZOOM_WIDTH = 6.0, 4.8
LEFT, TITLE, AXIS_ROOM, BAR_ROOM, GAP, LEGEND_DROP = 0.8, 0.6, 0.55, 1.15, 0.45, 0.4


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
    return figure_png(plane_figure(samples, real, distribution, metrics, step, critic), fit=False)


def plane_figure(
    samples: Tensor,
    real: Tensor,
    distribution: ToyDistribution,
    metrics: dict[str, Any],
    step: int,
    critic: Callable[[Tensor], Tensor] | None = None,
) -> Any:
    """`plane_png`'s matplotlib figure (the caller closes it)."""
    points, reference = samples.double().numpy(), real.double().numpy()
    modes = distribution.modes.double().numpy()
    std = distribution.std
    margin = 0.35 * (modes.max() - modes.min()) + 10 * std
    low, high = modes.min() - margin, modes.max() + margin
    distances = np.linalg.norm(points[:, None, :] - modes[None, :, :], axis=2)
    good = distances.min(axis=1) <= QUALITY_STDS * std
    counts = (
        metrics.get("mode_counts")
        or np.bincount(distances.argmin(axis=1)[good], minlength=len(modes)).tolist()
    )

    width = LEFT + MAIN_SIDE + (BAR_ROOM if critic else 0.0) + GAP + ZOOM_WIDTH + 0.3
    height = AXIS_ROOM + MAIN_SIDE + TITLE
    figure = plt.figure(figsize=(width, height), dpi=DPI)

    def box(x: float, y: float, w: float, h: float) -> tuple[float, float, float, float]:
        return (x / width, y / height, w / width, h / height)  # inches to fractions

    bottom = AXIS_ROOM
    axes = figure.add_axes(box(LEFT, bottom, MAIN_SIDE, MAIN_SIDE))
    if critic is not None:
        bar = figure.add_axes(box(LEFT + MAIN_SIDE + 0.15, bottom, 0.18, MAIN_SIDE))
        _decision_surface(figure, axes, bar, critic, low, high)
    axes.hist2d(
        reference[:, 0], reference[:, 1], bins=160, range=[[low, high], [low, high]],
        cmap="Greys", cmin=1, alpha=0.6, zorder=1,
    )  # fmt: skip
    axes.add_collection(
        PatchCollection([Circle((x, y), QUALITY_STDS * std) for x, y in modes],
                        fc="none", lw=0.6, ec="0.2", alpha=0.7, zorder=2)
    )  # fmt: skip
    axes.plot(modes[:, 0], modes[:, 1], "+", color="k", ms=5, mew=0.8, zorder=2)
    # Off-mode points, then the high-quality ones above everything: a mode's marks never
    # hide the samples it holds.
    axes.scatter(points[~good, 0], points[~good, 1], s=4, c=OFF, alpha=0.6, lw=0, zorder=3,
                 gid="off-mode")  # fmt: skip
    axes.scatter(points[good, 0], points[good, 1], s=3, c=GOOD, alpha=0.5, lw=0, zorder=4,
                 gid="high quality")  # fmt: skip
    for (x, y), count in zip(modes, counts, strict=True):
        axes.annotate(
            str(count), (x, y), xytext=(5, 5), textcoords="offset points", fontsize=7,
            color=OFF if count == 0 else "0.1", zorder=5,
        )  # fmt: skip
    outside = int(((points < low) | (points > high) | ~np.isfinite(points)).any(axis=1).sum())
    axes.set_xlim(low, high)
    axes.set_ylim(low, high)
    axes.set_aspect("equal")
    axes.set_xlabel("x (data units)")
    axes.set_ylabel("y (data units)")
    total = len(points)
    handles = [
        Line2D([], [], ls="", marker="o", ms=4, color=GOOD,
               label=f"high quality (drawn on top): {int(good.sum()):,}, "
                     f"{100 * good.mean():.1f}%"),
        Line2D([], [], ls="", marker="o", ms=4, color=OFF,
               label=f"off-mode: {int((~good).sum()):,}, {100 * (~good).mean():.1f}%"),
        Line2D([], [], ls="", marker="+", ms=7, mew=1, color="k",
               label="mode centre; number: its high-quality samples"),
        Line2D([], [], ls="", marker="o", ms=10, mfc="none", mec="0.2",
               label=f"3{SIGMA} circle ({SIGMA} = {std:g}): high quality within"),
        Patch(fc="0.45", alpha=0.6, label=f"real data: density of {len(reference):,} samples"),
    ]  # fmt: skip
    # The zoomed modes beside the main view, top to top, and the legend beneath them.
    zoom_left = LEFT + MAIN_SIDE + (BAR_ROOM if critic else 0.0) + GAP
    zoom_bottom = bottom + MAIN_SIDE - 0.1 - ZOOM_WIDTH
    zoom = figure.add_axes(box(zoom_left, zoom_bottom, ZOOM_WIDTH, ZOOM_WIDTH))
    _zoomed_modes(zoom, points, good, modes, std, counts)
    figure.legend(
        handles=handles, loc="upper left",
        bbox_to_anchor=(zoom_left / width, (zoom_bottom - LEGEND_DROP) / height),
        fontsize=8, frameon=False, handletextpad=0.4, borderaxespad=0,
    )  # fmt: skip
    kl = metrics.get("kl_from_uniform")
    figure.text(
        (LEFT + MAIN_SIDE / 2) / width, 1 - 0.1 / height,
        f"step {step:,}: {metrics['modes_covered']}/{metrics['mode_count']} modes covered, "
        f"{100 * metrics['high_quality']:.1f}% high quality, "
        + (f"KL from uniform {kl:.3f}" if kl is not None
           else "KL undefined (no high-quality sample)")
        + f"\n{total:,} generated samples; "
        + (f"{outside:,} outside the view (not drawn)" if outside else "all in the view"),
        ha="center", va="top", fontsize=10,
    )  # fmt: skip
    return figure


def _zoomed_modes(
    axes: Any,
    points: np.ndarray,
    good: np.ndarray,
    modes: np.ndarray,
    std: float,
    counts: Sequence[int],
) -> None:
    """Every mode zoomed in to ±ZOOM_STDS around its centre (in stds), in a square block of
    cells as the modes lie: the true density in grey, the 3-std circle, the samples on top.
    One axes holds every cell (offsets in stds, each cell shifted to its place), so 25 modes
    cost one axes' drawing, not 25."""
    cells, side = _mode_cells(modes)
    reach, gap = ZOOM_STDS, ZOOM_GAP_STDS
    pitch = 2 * reach + gap
    extent = side * pitch - gap

    def centre(row: int, column: int) -> tuple[float, float]:
        return column * pitch + reach, -(row * pitch + reach)

    # The true density of every occupied cell, as one grey image.
    pixels = np.linspace(0, extent, side * ZOOM_PIXELS)
    along = np.mod(pixels, pitch)
    inside = along <= 2 * reach
    bump = np.where(inside, np.exp(-0.5 * (along - reach) ** 2), np.nan)
    occupied = np.zeros((side, side), dtype=bool)
    for row, column in cells:
        occupied[row, column] = True
    index = np.minimum((pixels // pitch).astype(int), side - 1)
    shade = bump[:, None] * bump[None, :]  # [y from the top, x]
    shade[~occupied[index][:, index]] = np.nan
    axes.imshow(
        shade, extent=(0, extent, -extent, 0), origin="upper", cmap="Greys", vmin=0, vmax=1.8,
        zorder=0, interpolation="bilinear",
    )  # fmt: skip
    shifted: dict[bool, list[np.ndarray]] = {True: [], False: []}
    window = reach * std
    middles = np.array([centre(row, column) for row, column in cells])
    frames = [Rectangle((x - reach, y - reach), 2 * reach, 2 * reach) for x, y in middles]
    axes.add_collection(PatchCollection(frames, fc="none", lw=0.6, ec="0.5", zorder=1))
    circles = [Circle((x, y), QUALITY_STDS) for x, y in middles]
    axes.add_collection(PatchCollection(circles, fc="none", lw=0.6, ec="0.2", zorder=1))
    for mode, (row, column) in enumerate(cells):
        x, y = centre(row, column)
        near = np.abs(points - modes[mode]).max(axis=1) <= window
        for kind in (True, False):
            shifted[kind].append((points[near & (good == kind)] - modes[mode]) / std + (x, y))
        axes.text(
            x - reach + 0.4, y + reach - 0.4, f"{counts[mode]:,}", ha="left", va="top",
            fontsize=7, color=OFF if counts[mode] == 0 else "0.1", zorder=3,
        )  # fmt: skip
    axes.plot(middles[:, 0], middles[:, 1], "+", color="k", ms=4, mew=0.7, zorder=1)
    for kind, colour, size in ((False, OFF, 5), (True, GOOD, 3)):
        drawn = np.concatenate(shifted[kind]) if shifted[kind] else np.zeros((0, 2))
        axes.scatter(drawn[:, 0], drawn[:, 1], s=size, c=colour, alpha=0.55, lw=0, zorder=2,
                     gid="high quality" if kind else "off-mode")  # fmt: skip
    # Every cell has the same scale: ticks under the first column and beside the last row.
    offsets = (-QUALITY_STDS, 0.0, QUALITY_STDS)
    axes.set_xticks([reach + o for o in offsets], [f"{o:g}" for o in offsets])
    axes.set_yticks([-(reach + (side - 1) * pitch) + o for o in offsets],
                    [f"{o:g}" for o in offsets])  # fmt: skip
    axes.tick_params(labelsize=7, length=2, pad=1)
    for spine in axes.spines.values():
        spine.set_visible(False)
    axes.set_xlim(-0.2, extent + 0.2)
    axes.set_ylim(-extent - 0.2, 0.2)
    axes.set_aspect("equal")
    axes.set_xlabel(f"offset from each mode's centre in x and in y ({SIGMA})", fontsize=8)
    axes.set_title(
        f"each mode zoomed to ±{ZOOM_STDS:g}{SIGMA} around its centre, laid out as the modes lie;\n"
        f"grey: true density; circle: 3{SIGMA}; number: high-quality samples",
        fontsize=8,
    )  # fmt: skip


def _mode_cells(modes: np.ndarray) -> tuple[list[tuple[int, int]], int]:
    """A (row, column) in a side x side block for each mode, as the modes lie in the plane
    (ring8 round a 3 x 3 block's edge, grid25 on its 5 x 5 grid); row by row in index order
    where two modes would share a cell."""
    side = max(1, math.ceil(math.sqrt(len(modes))))
    low, high = modes.min(axis=0), modes.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    scaled = np.clip(((modes - low) / span * side).astype(int), 0, side - 1)
    cells = [(side - 1 - int(y), int(x)) for x, y in scaled]
    if len(set(cells)) < len(cells):
        cells = [divmod(index, side) for index in range(len(modes))]
    return cells, side


# Points per side of the grid the decision surface is drawn from.
SURFACE_POINTS = 160


def _decision_surface(
    figure: Any,
    axes: Any,
    bar: Any,
    critic: Callable[[Tensor], Tensor],
    low: float,
    high: float,
) -> None:
    """D's logit over the view as filled contours beneath the points, with a colour bar in
    `bar`: where the discriminator believes real data lies, and so where it pulls the
    generator."""
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
        filled, cax=bar, label="discriminator logit D(x) (beneath the points)",
        ticks=np.linspace(-bound, bound, 5), format="%.3g",
    )  # fmt: skip


def line_png(
    samples: Tensor,
    real: Tensor,
    critic: Callable[[Tensor], Tensor] | None,
    metrics: dict[str, Any],
    step: int,
    distribution: ToyDistribution | None = None,
) -> bytes:
    """The 1-D picture: the true density (`distribution`'s, else a histogram of the data),
    the generator's histogram, and the critic with its slope."""
    return figure_png(line_figure(samples, real, critic, metrics, step, distribution))


def line_figure(
    samples: Tensor,
    real: Tensor,
    critic: Callable[[Tensor], Tensor] | None,
    metrics: dict[str, Any],
    step: int,
    distribution: ToyDistribution | None = None,
) -> Any:
    """`line_png`'s matplotlib figure (the caller closes it)."""
    generated, reference = samples.double().flatten().numpy(), real.double().flatten().numpy()
    both = np.concatenate([generated, reference])
    low, high = np.percentile(both, 0.5) - 0.5, np.percentile(both, 99.5) + 0.5
    if distribution is not None:
        centres = distribution.modes.double().flatten().numpy()
        low = min(low, centres.min() - 4 * distribution.std)
        high = max(high, centres.max() + 4 * distribution.std)
    figure, density_axes = plt.subplots(figsize=(8, 4.8), dpi=DPI)
    bins = np.linspace(low, high, 61)
    if distribution is not None:
        xs = np.linspace(low, high, 400)
        truth = gaussian_mixture_density(centres, distribution.std)(xs)
        name = (
            f"true density N({centres[0]:g}, {distribution.std:g}²)"
            if len(centres) == 1 else "true density"
        )  # fmt: skip
        density_axes.fill_between(xs, truth, color="0.88", zorder=0)
        density_axes.plot(xs, truth, color="0.3", lw=1.5, label=name, zorder=2)
    else:
        density_axes.hist(
            reference, bins=list(bins), density=True, color="0.6", alpha=0.6,
            label=f"data: histogram of {len(reference):,} samples",
        )  # fmt: skip
    density_axes.hist(
        generated, bins=list(bins), density=True, color=GOOD, alpha=0.45, zorder=1,
        label=f"generator: histogram of {len(generated):,} samples",
    )  # fmt: skip
    density_axes.set_xlabel("x (data units)")
    density_axes.set_ylabel("density (per data unit)")
    density_axes.set_xlim(low, high)
    density_axes.set_ylim(bottom=0)
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
        critic_axes.set_ylabel("critic D(x) and its slope dD/dx")
        more_handles, more_labels = critic_axes.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    density_axes.legend(handles, labels, loc="upper left", fontsize=8)
    outside = int(((generated < low) | (generated > high) | ~np.isfinite(generated)).sum())
    w1 = metrics.get("w1")
    density_axes.set_title(
        f"step {step:,}: W1 to the data "
        + (f"{w1:.4f}" if w1 is not None else "undefined")
        + (f"; {outside:,} of {len(generated):,} generated points outside the view"
           if outside else ""),
        fontsize=10,
    )  # fmt: skip
    return figure


# zlib's level for the PNGs: 4 encodes the curves (redrawn at each checkpoint) in 15% less
# time than the default 6, for files 2% larger.
PNG_COMPRESS_LEVEL = 4


def figure_png(figure: Any, fit: bool = True) -> bytes:
    """The figure as PNG bytes; `fit` lays it out to its labels first (tight_layout: a draw
    of its own, most of a small figure's cost), where fixed margins do not fit it."""
    buffer = io.BytesIO()
    if fit:
        figure.tight_layout()
    figure.savefig(buffer, format="png", pil_kwargs={"compress_level": PNG_COMPRESS_LEVEL})
    plt.close(figure)
    return buffer.getvalue()


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
    return figure_png(figure)
