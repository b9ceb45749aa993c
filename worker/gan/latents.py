"""Latents for sampling jobs: per-seed draws, paths between two of them, and truncation.

Interpolation: `lerp` walks the straight line; `slerp` walks the great circle, keeping the
norm near that of its endpoints. With a Gaussian prior almost all mass sits on a shell of
radius about √dim, and lerp's midpoints fall well inside it (about √dim / √2 halfway), where
the generator saw almost no training latents (T. White, "Sampling Generative Networks",
2016). So slerp is the default for Gaussian priors and lerp for uniform ones, whose cube is
convex and contains every straight path between two of its points.

Truncation (ψ in (0, 1]) shrinks every latent towards the origin, z ↦ ψ·z, for both priors:
StyleGAN's ψ-truncation with the origin as the mean latent (both our priors have mean 0), or
Glow's sampling temperature. It trades variety for fidelity; ψ = 1 leaves latents unchanged.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from shared.specs import LatentSpec, SampleSpec
from worker.gan.priors import latents_for_seeds

InterpolationMethod = Literal["lerp", "slerp"]
# Below this angle (radians) slerp falls back to lerp: the paths differ by under θ²/8 ≈ 1e-9
# relative there, below float32 resolution, and sin θ stops being a safe divisor. The same
# test catches nearly opposite endpoints (sin θ ≈ 0 again), where no great circle is singled
# out, and one-dimensional latents, whose angle is always 0 or π.
SLERP_MIN_SIN_ANGLE = 1e-4
# Paths are computed in float64 and rounded once to float32, the generators' dtype.
_PATH_DTYPE = torch.float64


def lerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Points (1 - t)·a + t·b for each t: a, b of shape [dim], t [n] -> [n, dim]."""
    a64, b64, t64 = a.to(_PATH_DTYPE), b.to(_PATH_DTYPE), t.to(_PATH_DTYPE).unsqueeze(1)
    return ((1 - t64) * a64 + t64 * b64).to(a.dtype)


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation: sin((1-t)θ)/sin θ · a + sin(tθ)/sin θ · b, θ the angle a-b.

    a, b of shape [dim], t [n] -> [n, dim]. t = 0 and t = 1 give a and b exactly. Falls back
    to `lerp` when sin θ < `SLERP_MIN_SIN_ANGLE` (parallel or opposite endpoints, or a zero
    endpoint).
    """
    a64, b64 = a.to(_PATH_DTYPE), b.to(_PATH_DTYPE)
    norms = a64.norm() * b64.norm()
    if norms == 0:
        return lerp(a, b, t)
    theta = torch.arccos((a64 @ b64 / norms).clamp(-1, 1))
    if torch.sin(theta) < SLERP_MIN_SIN_ANGLE:
        return lerp(a, b, t)
    t64 = t.to(_PATH_DTYPE).unsqueeze(1)
    weight_a = torch.sin((1 - t64) * theta) / torch.sin(theta)
    weight_b = torch.sin(t64 * theta) / torch.sin(theta)
    return (weight_a * a64 + weight_b * b64).to(a.dtype)


INTERPOLATORS = {"lerp": lerp, "slerp": slerp}


def default_method(latent: LatentSpec) -> InterpolationMethod:
    """slerp for a Gaussian prior, lerp for a uniform one (see the module docstring)."""
    return "slerp" if latent.prior == "gaussian" else "lerp"


def interpolate(a: Tensor, b: Tensor, steps: int, method: InterpolationMethod) -> Tensor:
    """`steps` latents [steps, dim] evenly spaced in t from a (first) to b (last)."""
    return INTERPOLATORS[method](a, b, torch.linspace(0, 1, steps, dtype=_PATH_DTYPE))


def truncate(z: Tensor, psi: float) -> Tensor:
    """Latents shrunk towards the origin, ψ·z; ψ in (0, 1], and ψ = 1 returns z itself."""
    if not 0 < psi <= 1:
        raise ValueError(f"truncation must lie in (0, 1], got {psi}")
    return z if psi == 1 else z * psi


def latents_for_sampling(latent: LatentSpec, spec: SampleSpec) -> Tensor:
    """The float32 latents [n, dim] a sampling job renders, in order.

    One per seed, or the interpolation path between the latents of `from_seed` and
    `to_seed`; then truncated when the spec asks. The same spec always gives the same tensor.
    """
    if spec.interpolation is not None:
        path = spec.interpolation
        ends = latents_for_seeds(latent, [path.from_seed, path.to_seed])
        method = path.method or default_method(latent)
        z = interpolate(ends[0], ends[1], path.steps, method)
    else:
        z = latents_for_seeds(latent, spec.seeds or [])
    if spec.truncation is not None:
        z = truncate(z, spec.truncation)
    return z.to(torch.float32)
