"""dcgan at every image size and channel count a data source may have: 28, 32, 64, 128 and
256 px; 1 or 3 channels."""

from __future__ import annotations

import io
import math
from typing import Any

import pytest
import torch
from gan_testing import MNIST_DIR, RecordingHooks, mnist_spec
from PIL import Image

from shared.specs import TrainSpec
from worker.gan import evaluation
from worker.gan import train_common as loop_module
from worker.gan.models import (
    MAX_WIDTH_MULTIPLE,
    build_discriminator,
    build_generator,
    dcgan_channels,
    image_shape,
)
from worker.gan.sample import images_per_batch
from worker.gan.train import train


def _image_spec(channels: int, size: int, **overrides: Any) -> TrainSpec:
    """A tiny dcgan spec whose data states its image shape (the spec is all the model needs)."""
    data = {"source": "mnist", "path": str(MNIST_DIR), "resize": size, "channels": channels}
    return mnist_spec(data=data, **overrides)


class _RandomImages:
    """Stand-in data of any image shape: uniform noise in [-1, 1], a fresh batch per draw."""

    def __init__(self, shape: tuple[int, int, int], batch_size: int):
        self.shape, self.batch_size = shape, batch_size

    def batch(self, step: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(step)
        return torch.rand(self.batch_size, *self.shape, generator=generator) * 2 - 1


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [28, 32, 64, 128, 256])
def test_dcgan_follows_the_datas_image_shape(size: int, channels: int) -> None:
    spec = _image_spec(channels, size)
    assert (image_shape(spec.data).channels, image_shape(spec.data).size) == (channels, size)
    images = build_generator(spec)(torch.randn(2, spec.latent.dim))
    assert images.shape == (2, channels, size, size)
    assert build_discriminator(spec)(images).shape == (2,)


def test_default_64px_dcgan_is_the_pytorch_example_network() -> None:
    spec = _image_spec(3, 64, model="dcgan", latent={"dim": 100})
    generator, discriminator = build_generator(spec), build_discriminator(spec)
    assert generator[1].weight.shape == (100, 512, 4, 4)  # ngf * 8 at 4x4
    assert discriminator[0].weight.shape == (64, 3, 4, 4)
    count = sum(p.numel() for p in generator.parameters())
    assert count == 3_576_704  # pytorch/examples' DCGAN generator for nz = 100, nc = 3


def test_128_and_256_px_widen_no_further_than_the_64_px_plan() -> None:
    """The two extra doublings add layers at the image end, not width at the 4x4 end."""
    assert dcgan_channels(64, 4) == [64, 128, 256, 512]  # the 64 px plan, unchanged
    assert dcgan_channels(64, 6) == [64, 128, 256, 512, 512, 512]
    spec = _image_spec(3, 256, model={"family": "dcgan", "width": 64}, latent={"dim": 100})
    generator, discriminator = build_generator(spec), build_discriminator(spec)
    assert generator[1].weight.shape == (100, 64 * MAX_WIDTH_MULTIPLE, 4, 4)
    assert discriminator[-2].weight.shape == (1, 64 * MAX_WIDTH_MULTIPLE, 4, 4)
    for network in (generator, discriminator):
        assert 10e6 < sum(p.numel() for p in network.parameters()) < 12e6


@pytest.mark.parametrize(("size", "channels"), [(32, 3), (64, 1)])
def test_dcgan_trains_a_few_steps_at_32_and_64_px(
    size: int, channels: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    shape = (channels, size, size)
    monkeypatch.setattr(
        loop_module, "open_data", lambda spec, *_: _RandomImages(shape, spec.train.batch_size)
    )
    spec = _image_spec(channels, size, train={"steps": 3, "batch_size": 4}, sample_every=3)
    hooks = RecordingHooks()
    train(spec, hooks=hooks)
    assert all(math.isfinite(value) for value in hooks.reports[-1].metrics.values())
    grid = Image.open(io.BytesIO(hooks.samples[-1][1]))
    assert grid.size == (8 * (size + 2) + 2,) * 2
    assert grid.mode == ("L" if channels == 1 else "RGB")


def test_128px_mnist_trains_draws_full_size_and_is_scored_by_the_28px_classifier(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two steps at 128 px on MNIST's own data (bicubically enlarged): the snapshot grid keeps
    128 px cells (an inversion reads them back), and the final evaluation scales its images
    down for the digit classifier, which scores every one (200 here, not 10,000: time)."""
    monkeypatch.setattr(loop_module, "FIXED_SAMPLE_COUNTS", {"images": 4, "points": 1})
    monkeypatch.setattr(evaluation, "FINAL_SAMPLES", 200)
    spec = _image_spec(1, 128, train={"steps": 2, "batch_size": 2, "seed": 0}, sample_every=2)
    hooks = RecordingHooks()
    train(spec, hooks=hooks)
    grid = Image.open(io.BytesIO(hooks.samples[-1][1]))
    assert grid.size == (2 * 130 + 2,) * 2
    step, metrics = hooks.evaluations[-1]
    assert step == 2 and sum(metrics["class_counts"]) == 200
    assert math.isfinite(metrics["frechet_distance"]) and metrics["frechet_distance"] > 0


def test_images_past_64_px_go_through_g_in_batches_of_the_same_pixels() -> None:
    assert images_per_batch(256, _image_spec(1, 28)) == 256  # unchanged up to 64 px
    assert images_per_batch(256, _image_spec(3, 64)) == 256
    assert images_per_batch(256, _image_spec(3, 128)) == 64
    assert images_per_batch(1000, _image_spec(1, 256)) == 62
