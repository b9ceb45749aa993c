from __future__ import annotations

import math

import pytest
import torch

from shared.specs import LatentSpec, SampleSpec
from worker.gan.latents import (
    default_method,
    interpolate,
    latents_for_sampling,
    lerp,
    slerp,
    truncate,
)
from worker.gan.priors import latents_for_seeds

DIM = 512


def _pair(dim: int = DIM) -> tuple[torch.Tensor, torch.Tensor]:
    z = latents_for_seeds(LatentSpec(dim=dim), [1, 2])
    return z[0], z[1]


def test_slerp_and_lerp_paths_start_and_end_exactly_at_their_endpoints() -> None:
    a, b = _pair()
    for method in ("slerp", "lerp"):
        path = interpolate(a, b, 5, method)
        assert path.shape == (5, DIM) and path.dtype == torch.float32
        assert torch.equal(path[0], a) and torch.equal(path[-1], b)


def test_slerp_midpoints_keep_a_typical_gaussian_norm_where_lerp_midpoints_shrink() -> None:
    a, b = _pair()
    typical = math.sqrt(DIM)
    half = torch.tensor([0.5])
    slerp_norm = slerp(a, b, half)[0].norm().item()
    lerp_norm = lerp(a, b, half)[0].norm().item()
    assert slerp_norm == pytest.approx(typical, rel=0.1)
    # Two independent Gaussians are nearly orthogonal: lerp's midpoint has norm ≈ √(dim / 2).
    assert lerp_norm == pytest.approx(typical / math.sqrt(2), rel=0.1)


def test_slerp_falls_back_to_lerp_for_parallel_opposite_and_zero_endpoints() -> None:
    a = torch.tensor([1.0, 2.0, 3.0])
    t = torch.linspace(0, 1, 7, dtype=torch.float64)
    for b in (a * 2, a.clone(), -a, torch.zeros(3)):
        path = slerp(a, b, t)
        assert torch.isfinite(path).all()
        assert torch.equal(path, lerp(a, b, t))


def test_one_dimensional_latents_interpolate_along_the_line() -> None:
    path = interpolate(torch.tensor([-1.0]), torch.tensor([3.0]), 5, "slerp")
    assert path.flatten().tolist() == [-1.0, 0.0, 1.0, 2.0, 3.0]


def test_truncation_shrinks_norms_by_psi_and_psi_one_is_the_identity() -> None:
    z = latents_for_seeds(LatentSpec(dim=16), [1, 2, 3])
    assert truncate(z, 1.0) is z
    shrunk = truncate(z, 0.5)
    assert torch.allclose(shrunk.norm(dim=1), 0.5 * z.norm(dim=1))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        truncate(z, 1.5)


def test_the_default_method_is_slerp_for_gaussian_and_lerp_for_uniform_priors() -> None:
    assert default_method(LatentSpec(prior="gaussian")) == "slerp"
    assert default_method(LatentSpec(prior="uniform")) == "lerp"


def test_sampling_latents_follow_the_spec() -> None:
    latent = LatentSpec(dim=8)
    seeds = SampleSpec(job_id="j", seeds=[5, 6], truncation=0.7)
    assert torch.equal(latents_for_sampling(latent, seeds), latents_for_seeds(latent, [5, 6]) * 0.7)

    path = {"from_seed": 5, "to_seed": 6, "steps": 4}
    slerped = latents_for_sampling(latent, SampleSpec(job_id="j", interpolation=path))
    ends = latents_for_seeds(latent, [5, 6])
    assert torch.equal(slerped, interpolate(ends[0], ends[1], 4, "slerp"))
    lerped = SampleSpec(job_id="j", interpolation={**path, "method": "lerp"})
    assert not torch.equal(latents_for_sampling(latent, lerped), slerped)
