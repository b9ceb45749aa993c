"""How far a generator's output moves as its latent moves: the distances of a neighbourhood's
images from its centre image, per radius, as JSON and as a plot (matplotlib, headless).

Distance is measured on what the job draws: for images, the root mean square over every
pixel and channel of the difference in 8-bit levels (0-255, the generator's [-1, 1] clamped
and scaled as the PNG is); for points, the Euclidean distance in data units.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from shared.specs import TrainSpec
from shared.specs.sample import NeighbourhoodSpec

IMAGE_UNIT = "RMS over pixels, in 8-bit levels (0-255)"
POINT_UNIT = "Euclidean distance, in data units"


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
    from worker.gan import plots  # matplotlib loads only where a picture is drawn

    plot = plots.neighbourhood_png(neighbourhood.radii, mean, spread, unit)
    return NeighbourhoodReport(json=document, plot=plot)
