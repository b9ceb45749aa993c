"""Quality of a generator of point data without known modes (an uploaded .npz of points, or
one named by path or store key): precision, recall, density and coverage in data space
(worker/gan/prdc.py, k = 5) against real points held back from training.

The held-back points are a fixed share of the file's (`data.held_back_split`: 20%, at most
2,000, chosen by a seed of their own, so the same points for every job on the data);
training never sees them. Each
evaluation draws EVAL_DRAWS sets of generated points, each as large as the held-back set
(Naeem et al. compare equal numbers), on latents fixed for the run, and reports per figure
the mean over the draws and its 95% interval:

    points_precision, points_precision_interval ([low, high])   (and so on for
    points_recall, points_density, points_coverage)
    points_samples    generated points scored in all (EVAL_DRAWS x points_held_out)
    points_held_out   real points held back: the balls precision and density count, and
                      the points recall and coverage average over
    points_draws      EVAL_DRAWS

A point file too small to hold points back gets the figures as null and `points` saying why.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor

from shared.specs import TrainSpec
from worker.gan.data import (
    HELD_BACK_FRACTION,
    HELD_BACK_MIN,
    held_back_split,
    is_point_array,
    load_samples,
)
from worker.gan.prdc import FIGURES, NEIGHBOURS, RealSet, figures_over_draws
from worker.gan.priors import sample_latents
from worker.gan.seeding import Stream, generator_for

# Independent draws of generated points per evaluation: enough for a t-interval, and at
# most 5 x 2,000 points (about a second of k-NN arithmetic on one CPU thread).
EVAL_DRAWS = 5
# The draws' latents, fixed for every evaluation of a run (as evaluation.EVAL_SEED's).
POINTS_SEED = 7_927

Metrics = dict[str, Any]


def is_point_file_data(spec: TrainSpec) -> bool:
    """Points read from a file (known from the spec once its data shape is resolved, as a
    running job's and a checkpoint's are): not a toy source, whose modes are known."""
    return not spec.data.source.startswith("toy:") and spec.data.is_points


class PointScorer:
    """Scores a generator against the held-back real points of its training data."""

    def __init__(self, spec: TrainSpec, held_back: Tensor) -> None:
        self.real = RealSet.of(held_back, NEIGHBOURS)
        self.latents = [
            sample_latents(
                spec.latent, len(held_back), generator_for(POINTS_SEED, Stream.EVALUATION, draw)
            )
            for draw in range(EVAL_DRAWS)
        ]

    def figures(self, draw: Callable[[Tensor], Tensor]) -> Metrics:
        """The figures of the points `draw(latents)` makes (G in eval mode, no grads)."""
        estimates = figures_over_draws(self.real, [draw(z) for z in self.latents])
        metrics: Metrics = {}
        for name in FIGURES:
            estimate = estimates[name]
            metrics[f"points_{name}"] = estimate.value
            metrics[f"points_{name}_interval"] = [estimate.low, estimate.high]
        held = len(self.real.points)
        metrics.update(
            points_samples=EVAL_DRAWS * held, points_held_out=held, points_draws=EVAL_DRAWS
        )
        return metrics


class Unscored:
    """A point file too small to hold points back: null figures and the reason."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def figures(self, draw: Callable[[Tensor], Tensor]) -> Metrics:
        return {**{f"points_{name}": None for name in FIGURES}, "points": self.reason}


def point_scorer(spec: TrainSpec, data_path: Path | None) -> PointScorer | Unscored | None:
    """The scorer for `spec`'s data when it is a point file, else None."""
    if not is_point_file_data(spec):
        return None
    samples, label = load_samples(spec.data, data_path)
    if not is_point_array(samples):
        return None
    _, held = held_back_split(len(samples), spec.train.batch_size)
    if len(held) == 0:
        return Unscored(
            f"not scored: {label} has {len(samples)} points, too few to hold "
            f"{HELD_BACK_FRACTION:.0%} back (at least {HELD_BACK_MIN}) and still train on "
            f"batches of {spec.train.batch_size}"
        )
    return PointScorer(spec, samples[held])
