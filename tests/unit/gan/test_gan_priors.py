from __future__ import annotations

import torch

from shared.specs import LatentSpec
from worker.gan.priors import latents_for_seeds, sample_latents


def test_gaussian_latents_have_the_spec_shape_and_unit_scale() -> None:
    z = sample_latents(LatentSpec(dim=3), 4000, torch.Generator().manual_seed(0))
    assert z.shape == (4000, 3)
    assert abs(z.mean().item()) < 0.05
    assert abs(z.std().item() - 1) < 0.05


def test_uniform_latents_lie_in_minus_one_to_one() -> None:
    z = sample_latents(LatentSpec(dim=5, prior="uniform"), 2000, torch.Generator().manual_seed(0))
    assert z.shape == (2000, 5)
    assert z.min() >= -1 and z.max() <= 1
    assert z.min() < -0.99 and z.max() > 0.99


def test_a_seed_gives_the_same_latent_whatever_seeds_come_with_it() -> None:
    latent = LatentSpec(dim=6)
    alone = latents_for_seeds(latent, [42])
    in_a_crowd = latents_for_seeds(latent, [7, 42, 1000, 3])
    assert torch.equal(in_a_crowd[1], alone[0])
    reversed_order = latents_for_seeds(latent, [3, 1000, 42, 7])
    assert torch.equal(reversed_order.flip(0), in_a_crowd)


def test_different_seeds_give_different_latents() -> None:
    z = latents_for_seeds(LatentSpec(dim=4, prior="uniform"), [1, 2])
    assert not torch.equal(z[0], z[1])


def test_no_seeds_give_an_empty_batch_of_the_right_width() -> None:
    assert latents_for_seeds(LatentSpec(dim=9), []).shape == (0, 9)
