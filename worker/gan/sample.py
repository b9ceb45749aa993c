"""Images from a trained generator: rebuild it from a checkpoint, render latents as a PNG."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from shared.specs import TrainSpec
from worker.gan.checkpoint import checkpoint_spec
from worker.gan.data import reference_points
from worker.gan.grids import image_grid_png, scatter_png
from worker.gan.models import build_generator
from worker.gan.priors import latents_for_seeds

# Real points drawn behind generated ones in point-data plots: enough to show every mode.
REFERENCE_POINT_COUNT = 1000


@dataclass(frozen=True)
class SampleResult:
    """A PNG of one sample per seed (in seed order) and the latents that made them."""

    png: bytes
    latents: np.ndarray  # float32, [len(seeds), latent dim]


def render_png(spec: TrainSpec, generated: Tensor) -> bytes:
    """Generator output as a picture: an image grid, or a scatter over real points."""
    if spec.data.is_image:
        return image_grid_png(generated)
    reference = reference_points(spec.data, REFERENCE_POINT_COUNT, spec.train.seed)
    return scatter_png(generated, reference)


def load_generator(checkpoint: dict[str, Any], device: torch.device) -> tuple[nn.Module, TrainSpec]:
    """The checkpoint's generator, rebuilt from its spec JSON, on `device`, in eval mode."""
    spec = checkpoint_spec(checkpoint)
    generator = build_generator(spec)
    generator.load_state_dict(checkpoint["generator"])
    return generator.to(device).eval(), spec


@torch.no_grad()
def sample_for_seeds(
    checkpoint: dict[str, Any], seeds: list[int], device: torch.device
) -> SampleResult:
    """One sample per seed; the same checkpoint and seeds give the same PNG bytes on a device."""
    generator, spec = load_generator(checkpoint, device)
    latents = latents_for_seeds(spec.latent, seeds)
    generated = generator(latents.to(device))
    return SampleResult(png=render_png(spec, generated), latents=latents.numpy().astype(np.float32))
