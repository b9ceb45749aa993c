"""Latents for sampling jobs, one function per mode of `SampleSpec`: per-seed draws, explicit
vectors or an `.npy` of them, paths through two or more latents, neighbourhoods, arithmetic;
and truncation, which applies to all of them.

Interpolation: `lerp` walks the straight line; `slerp` walks the great circle, keeping the
norm near that of its endpoints. With a Gaussian prior almost all mass sits on a shell of
radius about √dim, and lerp's midpoints fall well inside it (about √dim / √2 halfway), where
the generator saw almost no training latents (T. White, "Sampling Generative Networks",
2016). So slerp is the default for Gaussian priors and lerp for uniform ones, whose cube is
convex and contains every straight path between two of its points.

Truncation (ψ in (0, 1]) shrinks every latent towards the origin, z ↦ ψ·z, for both priors:
StyleGAN's ψ-truncation with the origin as the mean latent (both our priors have mean 0), or
Glow's sampling temperature. It trades variety for fidelity; ψ = 1 leaves latents unchanged.

Paths, neighbourhoods and sums are computed in float64 and rounded once to float32, the
generators' type. Vectors are read as float32, so a seed's latent written out (JSON or .npy)
and given back draws exactly what the seed draws.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from itertools import pairwise
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from shared.specs import LatentSpec, SampleSpec
from shared.specs.latent_checks import PICKLED_LATENTS, latents_array_problem, vector_problems
from shared.specs.sample import ArithmeticTerm, NeighbourhoodSpec
from worker.gan.errors import LatentsError
from worker.gan.priors import latents_for_seeds

InterpolationMethod = Literal["lerp", "slerp"]
# The first bytes of every .npy file (numpy.lib.format.MAGIC_PREFIX).
NPY_MAGIC = b"\x93NUMPY"
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


def interpolate_through(
    points: Sequence[Tensor], steps: int, method: InterpolationMethod
) -> Tensor:
    """The path through `points` (each [dim], two or more) in order: `steps` latents a leg,
    both ends included, legs sharing their ends; every point is on the path exactly."""
    legs = [interpolate(a, b, steps, method) for a, b in pairwise(points)]
    return torch.cat([legs[0], *(leg[1:] for leg in legs[1:])])


def point_latent(latent: LatentSpec, point: int | list[float]) -> Tensor:
    """The float32 latent [dim] of a seed (the prior's draw, as in `seeds`) or of a vector."""
    if isinstance(point, int):
        return latents_for_seeds(latent, [point])[0]
    return torch.tensor(point, dtype=torch.float32)


def unit_directions(dim: int, count: int, seed: int) -> Tensor:
    """`count` directions [count, dim] (float64) uniform on the unit sphere: normalised
    Gaussian draws from their own CPU generator, so a seed always gives the same ones."""
    draws = torch.randn(
        count, dim, generator=torch.Generator().manual_seed(seed), dtype=_PATH_DTYPE
    )
    return draws / draws.norm(dim=1, keepdim=True)


def neighbourhood_latents(centre: Tensor, spec: NeighbourhoodSpec) -> Tensor:
    """Rows of [centre, centre + r·u for each of `count` directions u], one row per radius,
    as latents [radii · (count + 1), dim]; the same directions serve every radius."""
    middle = centre.to(_PATH_DTYPE)
    directions = unit_directions(len(middle), spec.count, spec.seed)
    rows = [torch.cat([middle[None], middle + radius * directions]) for radius in spec.radii]
    return torch.cat(rows).to(torch.float32)


def term_latent(latent: LatentSpec, term: ArithmeticTerm) -> Tensor:
    """The latent [dim] of one arithmetic term, before its weight: its seed's, its vector, or
    the mean of its seeds' latents."""
    if term.seeds is not None:
        return latents_for_seeds(latent, term.seeds).to(_PATH_DTYPE).mean(0).to(torch.float32)
    if term.seed is not None:
        return point_latent(latent, term.seed)
    return point_latent(latent, term.latent or [])


def arithmetic_latents(latent: LatentSpec, terms: Sequence[ArithmeticTerm]) -> Tensor:
    """Each term's latent and then their weighted sum, [terms + 1, dim]."""
    each = [term_latent(latent, term) for term in terms]
    total = sum(
        (term.weight * z.to(_PATH_DTYPE) for term, z in zip(terms, each, strict=True)),
        torch.zeros(latent.dim, dtype=_PATH_DTYPE),
    )
    return torch.stack([*each, total.to(torch.float32)])


def read_latents_npy(data: bytes, dim: int, name: str) -> Tensor:
    """Latents [n, dim] from the bytes of an `.npy` file, loaded with `allow_pickle=False`
    (an array of Python objects is refused, never unpickled); float16/32/64, drawn as
    float32. LatentsError, naming `name`, for anything else."""
    if not data.startswith(NPY_MAGIC):  # np.load would take it for a pickle
        raise LatentsError(f"spec.latents: {name} is not an .npy file (numpy.save writes one)")
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        if "pickle" in str(exc).lower():  # numpy's own words suggest loading it unsafely
            raise LatentsError(f"spec.latents: {name} {PICKLED_LATENTS}") from None
        raise LatentsError(f"spec.latents: {name} cannot be read as latents: {exc}") from None
    problem = latents_array_problem(array.shape, array.dtype, dim)
    if problem is None and not np.isfinite(array).all():
        problem = "holds NaN or infinite numbers"
    if problem is not None:
        raise LatentsError(f"spec.latents: {name} {problem}")
    return torch.from_numpy(array.astype(np.float32))


def latents_for_sampling(
    latent: LatentSpec, spec: SampleSpec, loaded: Tensor | None = None, truncate_z: bool = True
) -> Tensor:
    """The float32 latents [n, dim] a sampling job renders, in order (see `SampleSpec`).

    `loaded`: the latents of the `.npy` artifact the spec names (`read_latents_npy`). Vectors
    the spec gives must have the checkpoint's dimension (LatentsError naming them); then
    every latent is truncated when the spec asks (and `truncate_z`: a stylegan2 truncates in W
    instead, worker/gan/style_space.py). The same spec always gives the same tensor.
    """
    problems = vector_problems(spec, latent.dim)
    if problems:
        raise LatentsError("; ".join(f"{p['path']}: {p['message']}" for p in problems))
    z = _mode_latents(latent, spec, loaded)
    if spec.truncation is not None and truncate_z:
        z = truncate(z, spec.truncation)
    return z.to(torch.float32)


def _mode_latents(latent: LatentSpec, spec: SampleSpec, loaded: Tensor | None) -> Tensor:
    if spec.interpolation is not None:
        path = spec.interpolation
        points = [point_latent(latent, point) for point in path.path_points]
        return interpolate_through(points, path.steps, path.method or default_method(latent))
    if spec.neighbourhood is not None:
        centre = point_latent(latent, spec.neighbourhood.centre)
        return neighbourhood_latents(centre, spec.neighbourhood)
    if spec.arithmetic is not None:
        return arithmetic_latents(latent, spec.arithmetic)
    if spec.latents_artifact is not None:
        if loaded is None:
            raise ValueError("the spec's latents are in an artifact: pass them as `loaded`")
        return loaded
    if spec.latents is not None:
        return torch.tensor(spec.latents, dtype=torch.float32)
    return latents_for_seeds(latent, spec.seeds or [])
