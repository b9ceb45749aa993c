from __future__ import annotations

import pytest
import torch
from gan_testing import mnist_spec, ring_spec

from worker.gan.models import INIT_STD, build_discriminator, build_generator


def test_mlp_maps_latents_to_points_and_points_to_one_logit_each() -> None:
    spec = ring_spec()
    points = build_generator(spec)(torch.randn(5, spec.latent.dim))
    assert points.shape == (5, 2)
    assert build_discriminator(spec)(points).shape == (5,)


def test_mlp_width_defaults_to_128() -> None:
    spec = ring_spec(model="mlp")
    assert build_generator(spec)[0].out_features == 128


def test_dcgan_generates_28px_single_channel_images_in_tanh_range() -> None:
    spec = mnist_spec()
    images = build_generator(spec)(torch.randn(3, spec.latent.dim) * 10)
    assert images.shape == (3, 1, 28, 28)
    assert images.min() >= -1 and images.max() <= 1
    assert build_discriminator(spec)(images).shape == (3,)


def test_default_dcgan_is_the_09m_parameter_network_with_dcgan_init() -> None:
    spec = mnist_spec(model="dcgan", latent={"dim": 100})
    generator, discriminator = build_generator(spec), build_discriminator(spec)
    count = sum(p.numel() for net in (generator, discriminator) for p in net.parameters())
    assert 0.8e6 < count < 1.0e6
    first_conv = generator[1].weight
    assert first_conv.shape[1] == 128  # base width 64, doubled once for 28 px
    assert first_conv.std().item() == pytest.approx(INIT_STD, rel=0.05)
