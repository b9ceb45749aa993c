"""Images from a trained generator: rebuild it from a checkpoint, render latents as a PNG,
and what a sampling mode draws besides (an interpolation's GIF, a neighbourhood's distances).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from shared.specs import SampleSpec, TrainSpec
from shared.specs.sample_size import sample_size_problem
from worker.gan.checkpoint import checkpoint_spec
from worker.gan.data import reference_points
from worker.gan.errors import LatentsError, SampleSizeError
from worker.gan.grids import animated_gif, image_frames, image_grid_png, with_progress
from worker.gan.latents import interpolate_through, latents_for_sampling, point_latent
from worker.gan.models import build_generator
from worker.gan.neighbourhood import NeighbourhoodReport, neighbourhood_report
from worker.gan.point_pictures import gaussian_mixture_density, scatter_png
from worker.gan.priors import latents_for_seeds
from worker.gan.sample_classes import latents_with_classes
from worker.gan.style_space import draw_truncated, from_w, is_style, to_w
from worker.gan.toydata import toy_distribution

# Real points drawn behind generated ones in point-data plots: enough to show every mode.
REFERENCE_POINT_COUNT = 1000
# Latents go through the generator this many at a time: a 10,000-image job as one batch ran
# ~10x slower per image on CPU (activations far past the caches) than in chunks of 256, and
# in eval mode (no batch statistics) each image came out bit-identical either way.
DRAW_BATCH = 256
# The image side the batch sizes here and in evaluations were set at; larger images go
# through G in proportionally smaller batches (256 images of 256 px at once would keep 64
# feature maps of 128 px, 1 GB in fp32, per layer).
BATCH_SIDE = 64
# Side of a point-data animation frame: half the still plot's, 64 frames stay a small GIF.
GIF_SCATTER_SIZE = 256


@dataclass(frozen=True)
class SampleResult:
    """A PNG of the samples, in order, and exactly the latents they were drawn from; an
    interpolation's animation and a neighbourhood's distances when the mode draws them."""

    png: bytes
    latents: np.ndarray  # float32, [number of samples, latent dim]
    gif: bytes | None = None
    neighbourhood: NeighbourhoodReport | None = None


def render_png(spec: TrainSpec, generated: Tensor, columns: int | None = None) -> bytes:
    """Generator output as a picture: an image grid, or a scatter over real points.

    `columns` is the grid's width in images; None makes it square-ish.
    """
    if spec.data.is_image:
        return image_grid_png(generated, columns)
    reference = reference_points(spec.data, REFERENCE_POINT_COUNT, spec.train.seed)
    return scatter_png(generated, reference, density=true_density(spec))


def true_density(spec: TrainSpec) -> Callable[[np.ndarray], np.ndarray] | None:
    """The density of 1-D toy data over x (gauss1d's N(3, 0.5²)), drawn beneath a 1-D
    picture's generated points; None for anything else."""
    if not spec.data.source.startswith("toy:"):
        return None
    distribution = toy_distribution(spec.data.source)
    if distribution.dim != 1:
        return None
    return gaussian_mixture_density(distribution.modes.double().numpy(), distribution.std)


def load_generator(checkpoint: dict[str, Any], device: torch.device) -> tuple[nn.Module, TrainSpec]:
    """The checkpoint's generator, rebuilt from its spec JSON, on `device`, in eval mode.

    The weight average (`generator_ema`) when the checkpoint has one, else G itself.
    """
    spec = checkpoint_spec(checkpoint)
    generator = build_generator(spec)
    generator.load_state_dict(checkpoint.get("generator_ema") or checkpoint["generator"])
    return generator.to(device).eval(), spec


@torch.no_grad()
def sample_for_seeds(
    checkpoint: dict[str, Any], seeds: list[int], device: torch.device
) -> SampleResult:
    """One sample per seed; the same checkpoint and seeds give the same PNG bytes on a device."""
    generator, spec = load_generator(checkpoint, device)
    drawn = _draw(generator, spec, latents_for_seeds(spec.latent, seeds), device)
    return SampleResult(png=drawn.png, latents=drawn.latents)


@torch.no_grad()
def sample_for_spec(
    checkpoint: dict[str, Any],
    sampling: SampleSpec,
    device: torch.device,
    loaded: Tensor | None = None,
) -> SampleResult:
    """The images a sampling job asks for, in the layout of its mode (see `SampleSpec`):
    a square-ish grid for seeds and latents, one row for an interpolation or arithmetic, a
    row per radius for a neighbourhood.

    `loaded`: the latents of the `.npy` artifact the spec names, if it names one. Latents
    come from `latents.latents_for_sampling`; the same checkpoint and spec give the same PNG
    bytes on a device. A stylegan2 truncates in W (`style_space`), and may interpolate in W.
    """
    generator, spec = load_generator(checkpoint, device)
    style = is_style(generator)
    latents = latents_for_sampling(spec.latent, sampling, loaded, truncate_z=not style)
    columns = None
    if sampling.interpolation is not None or sampling.arithmetic is not None:
        columns = len(latents)
    elif sampling.neighbourhood is not None:
        columns = sampling.neighbourhood.count + 1
    elif sampling.class_grid is not None:
        columns = len(latents)  # a row per class, each of every latent
    latents, labels = latents_with_classes(spec, sampling, latents)
    check_size(spec, sampling, len(latents))
    psi = sampling.truncation if style else None
    if sampling.interpolation is not None and sampling.interpolation.space == "w":
        result = _draw_w_path(generator, spec, sampling, labels, device)
    else:
        result = _draw(generator, spec, latents, device, columns, labels, psi)
    generated = result.generated
    if sampling.interpolation is not None:
        return SampleResult(result.png, result.latents, gif=interpolation_gif(spec, generated))
    if sampling.neighbourhood is not None:
        report = neighbourhood_report(spec, generated, sampling.neighbourhood, sampling.truncation)
        return SampleResult(result.png, result.latents, neighbourhood=report)
    return SampleResult(result.png, result.latents)


def check_size(spec: TrainSpec, sampling: SampleSpec, images: int) -> None:
    """SampleSizeError naming the field when `images` of the generator's side are more pixels
    than a job may draw (the API checked what the source's spec told it; the worker knows the
    side of every checkpoint, and the count of an artifact's latents)."""
    shape = spec.data.sample_shape
    if shape is None or len(shape) != 3:
        return
    problem = sample_size_problem(sampling, shape[1], images)
    if problem is not None:
        raise SampleSizeError(f"{problem['path']}: {problem['message']}")


def images_per_batch(batch: int, spec: TrainSpec) -> int:
    """`batch` images at a time up to 64 px, and the same pixels of larger ones (a quarter at
    128 px, a sixteenth at 256): G's activations grow with the image's area."""
    shape = spec.data.sample_shape
    side = shape[-1] if shape is not None and len(shape) == 3 else 0
    return batch if side <= BATCH_SIDE else max(1, batch * BATCH_SIDE**2 // side**2)


def interpolation_gif(spec: TrainSpec, generated: Tensor) -> bytes:
    """The path played frame by frame: each image enlarged, or for points the path so far
    over the real data."""
    if spec.data.is_image:
        return animated_gif(with_progress(image_frames(generated)))
    reference = reference_points(spec.data, REFERENCE_POINT_COUNT, spec.train.seed)
    density = true_density(spec)
    frames = []
    for end in range(len(generated)):
        # The path so far: a tick per point on a line, no density estimate of a path.
        png = scatter_png(
            generated[: end + 1], reference, GIF_SCATTER_SIZE, density=density, curve=False
        )
        frames.append(Image.open(io.BytesIO(png)))
    return animated_gif(with_progress(frames))


@dataclass(frozen=True)
class _Drawn:
    png: bytes
    latents: np.ndarray
    generated: Tensor


def _draw(
    generator: nn.Module,
    spec: TrainSpec,
    latents: Tensor,
    device: torch.device,
    columns: int | None = None,
    labels: Tensor | None = None,
    psi: float | None = None,
) -> _Drawn:
    """G's images of `latents` (of `labels`' classes, for a conditional G), DRAW_BATCH at a
    time (fewer past 64 px), and their picture; `psi` truncates in W (stylegan2: the other
    families' latents come truncated)."""
    latents = latents.to(torch.float32)
    batch = images_per_batch(DRAW_BATCH, spec)
    chunks = latents.to(device).split(batch)
    if labels is None:
        generated = torch.cat([draw_truncated(generator, chunk, psi=psi) for chunk in chunks])
    else:
        classes = labels.to(device).split(batch)
        generated = torch.cat(
            [draw_truncated(generator, z, y, psi) for z, y in zip(chunks, classes, strict=True)]
        )
    png = render_png(spec, generated, columns)
    return _Drawn(png=png, latents=latents.numpy(), generated=generated)


def _draw_w_path(
    generator: nn.Module,
    spec: TrainSpec,
    sampling: SampleSpec,
    labels: Tensor | None,
    device: torch.device,
) -> _Drawn:
    """An interpolation in stylegan2's W: each path point's w (of its image's class), the
    path between them (lerp unless the spec names a method), drawn with W-truncation; the
    drawn latents are the w path."""
    path = sampling.interpolation
    assert path is not None
    if not is_style(generator):
        raise LatentsError(
            f"spec.interpolation.space: w is stylegan2's latent space; this generator is "
            f"{spec.model.family}'s (use space z)"
        )
    points = torch.stack([point_latent(spec.latent, p) for p in path.path_points]).to(device)
    point_labels = None
    if labels is not None:
        point_labels = labels[:: path.steps - 1].to(device)
    w_points = to_w(generator, points, point_labels)
    w = interpolate_through(list(w_points.cpu()), path.steps, path.method or "lerp")
    generated = torch.cat(
        [
            from_w(generator, chunk.to(device), sampling.truncation)
            for chunk in w.split(images_per_batch(DRAW_BATCH, spec))
        ]
    )
    png = render_png(spec, generated, len(w))
    return _Drawn(png=png, latents=w.numpy(), generated=generated)
