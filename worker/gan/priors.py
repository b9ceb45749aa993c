"""Latent priors: where z comes from, for training, fixed sample grids and per-seed sampling."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from shared.specs import LatentSpec


def _gaussian(n: int, dim: int, generator: torch.Generator) -> Tensor:
    return torch.randn(n, dim, generator=generator)


def _uniform(n: int, dim: int, generator: torch.Generator) -> Tensor:
    return torch.rand(n, dim, generator=generator) * 2 - 1


# Keyed by `LatentSpec.prior`; a new prior is one function and one entry here.
PRIORS: dict[str, Callable[[int, int, torch.Generator], Tensor]] = {
    "gaussian": _gaussian,
    "uniform": _uniform,
}


def sample_latents(latent: LatentSpec, n: int, generator: torch.Generator) -> Tensor:
    """`n` latents of shape [n, dim] on the generator's device: N(0, 1) or U(-1, 1)."""
    return PRIORS[latent.prior](n, latent.dim, generator)


def latents_for_seeds(latent: LatentSpec, seeds: list[int]) -> Tensor:
    """One latent per seed, in order, each from its own CPU generator.

    A seed always gives the same z, whatever other seeds it is asked with and whatever device
    the generator network runs on.
    """
    if not seeds:
        return torch.empty(0, latent.dim)
    rows = [sample_latents(latent, 1, torch.Generator().manual_seed(seed)) for seed in seeds]
    return torch.cat(rows)
