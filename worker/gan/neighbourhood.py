"""How far a generator's output moves as its latent moves: the distances of a neighbourhood's
images from its centre image, per radius, as JSON and as a plot (matplotlib, headless).

Distance is measured on what the job draws: for images, the root mean square over every
pixel and channel of the difference in 8-bit levels (0-255, the generator's [-1, 1] clamped
and scaled as the PNG is); for points, the Euclidean distance in data units.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: workers have no display

import matplotlib.pyplot as plt
import torch
from torch import Tensor

from shared.sample_spec import NeighbourhoodSpec
from shared.specs import TrainSpec

IMAGE_UNIT = "RMS over pixels, in 8-bit levels (0-255)"
POINT_UNIT = "Euclidean distance, in data units"
DPI = 100


@dataclass(frozen=True)
class NeighbourhoodReport:
    """`neighbourhood.json` and `neighbourhood.png` of one neighbourhood."""

    json: bytes
    plot: bytes


def distances_from_centre(spec: TrainSpec, generated: Tensor, rows: int) -> Tensor:
    """Distances [rows, count] of each row's neighbours from its first image, the centre
    (outputs in grid order, each row the centre then its neighbours)."""
    outputs = generated.detach().to("cpu", torch.float64).reshape(rows, -1, *generated.shape[1:])
    flat = outputs.flatten(start_dim=2)
    if spec.data.is_image:
        levels = (flat.clamp(-1, 1) + 1) * 127.5
        return (levels[:, 1:] - levels[:, :1]).pow(2).mean(dim=2).sqrt()
    return (flat[:, 1:] - flat[:, :1]).norm(dim=2)


def neighbourhood_report(
    spec: TrainSpec, generated: Tensor, neighbourhood: NeighbourhoodSpec, truncation: float | None
) -> NeighbourhoodReport:
    """The distances of a neighbourhood's images (as drawn, in grid order) from its centre."""
    distances = distances_from_centre(spec, generated, len(neighbourhood.radii))
    unit = IMAGE_UNIT if spec.data.is_image else POINT_UNIT
    mean = distances.mean(dim=1).tolist()
    spread = distances.std(dim=1, correction=0).tolist()
    figures: dict[str, Any] = {
        "centre": neighbourhood.centre,
        "count": neighbourhood.count,
        "seed": neighbourhood.seed,
        "truncation": truncation,
        "unit": unit,
        "radii": list(neighbourhood.radii),
        "mean_distance": mean,
        "std_distance": spread,
        "distances": distances.tolist(),
    }
    document = json.dumps(figures, indent=2).encode()
    return NeighbourhoodReport(json=document, plot=_plot(neighbourhood.radii, mean, spread, unit))


def _plot(radii: list[float], mean: list[float], spread: list[float], unit: str) -> bytes:
    figure, axes = plt.subplots(figsize=(6, 4), dpi=DPI)
    axes.errorbar(radii, mean, yerr=spread, marker="o", capsize=3)
    axes.set_xlabel("radius r of z + r·u (latent units)")
    axes.set_ylabel(f"distance from the centre image\n({unit})", fontsize=9)
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.set_title("mean distance from the centre per radius (bars: one std)", fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
