"""Images from a trained generator: rebuild it from a checkpoint, render latents as a PNG."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from shared.specs import SampleSpec, TrainSpec
from worker.gan.checkpoint import checkpoint_spec
from worker.gan.data import reference_points
from worker.gan.grids import image_grid_png, scatter_png
from worker.gan.latents import latents_for_sampling
from worker.gan.models import build_generator
from worker.gan.priors import latents_for_seeds

# Real points drawn behind generated ones in point-data plots: enough to show every mode.
REFERENCE_POINT_COUNT = 1000


@dataclass(frozen=True)
class SampleResult:
    """A PNG of the samples, in order, and exactly the latents they were drawn from."""

    png: bytes
    latents: np.ndarray  # float32, [number of samples, latent dim]


def render_png(spec: TrainSpec, generated: Tensor, columns: int | None = None) -> bytes:
    """Generator output as a picture: an image grid, or a scatter over real points.

    `columns` is the grid's width in images; None makes it square-ish.
    """
    if spec.data.is_image:
        return image_grid_png(generated, columns)
    reference = reference_points(spec.data, REFERENCE_POINT_COUNT, spec.train.seed)
    return scatter_png(generated, reference)


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
    return _draw(generator, spec, latents_for_seeds(spec.latent, seeds), device)


@torch.no_grad()
def sample_for_spec(
    checkpoint: dict[str, Any], sampling: SampleSpec, device: torch.device
) -> SampleResult:
    """The images a sampling job asks for: per seed, or an interpolation drawn as one row.

    Truncation and the interpolation method are applied as `latents.latents_for_sampling`
    says; the same checkpoint and spec give the same PNG bytes on a device.
    """
    generator, spec = load_generator(checkpoint, device)
    latents = latents_for_sampling(spec.latent, sampling)
    columns = len(latents) if sampling.interpolation is not None else None
    return _draw(generator, spec, latents, device, columns)


def _draw(
    generator: nn.Module,
    spec: TrainSpec,
    latents: Tensor,
    device: torch.device,
    columns: int | None = None,
) -> SampleResult:
    latents = latents.to(torch.float32)
    generated = generator(latents.to(device))
    return SampleResult(png=render_png(spec, generated, columns), latents=latents.numpy())
