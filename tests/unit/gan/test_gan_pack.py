"""PacGAN packing: the discriminator judges `pack` samples at once."""

import math

import pytest
import torch
from gan_testing import RecordingHooks, mnist_spec, ring_spec

from shared.specs import TrainSpec
from worker.gan.models import Packed, build_discriminator
from worker.gan.train import train


def test_a_packed_discriminator_gives_one_logit_per_pack() -> None:
    points = build_discriminator(ring_spec(model={"family": "mlp", "width": 16, "pack": 4}))
    assert isinstance(points, Packed)
    assert points(torch.randn(32, 2)).shape == (8,)
    images = build_discriminator(mnist_spec(model={"family": "dcgan", "width": 4, "pack": 2}))
    assert images(torch.randn(8, 1, 28, 28)).shape == (4,)


def test_packs_are_consecutive_samples() -> None:
    spec = ring_spec(model={"family": "mlp", "width": 16, "pack": 2})
    discriminator = build_discriminator(spec)
    batch = torch.randn(4, 2)
    swapped = batch[[1, 0, 2, 3]]  # reorders inside the first pack only
    assert not torch.equal(discriminator(batch)[0], discriminator(swapped)[0])
    assert torch.equal(discriminator(batch)[1], discriminator(swapped)[1])


@pytest.mark.slow  # trains for seconds: in `make test`, not `make test-fast`
def test_a_packed_gan_trains_with_every_loss() -> None:
    for loss in ("non_saturating", "hinge", "least_squares", "wgan_gp"):
        hooks = RecordingHooks()
        spec = ring_spec(model={"family": "mlp", "width": 16, "pack": 2}, loss=loss)
        train(spec, hooks=hooks)
        assert all(math.isfinite(v) for r in hooks.reports for v in r.metrics.values()), loss


@pytest.mark.parametrize(
    ("model", "batch", "devices", "message"),
    [
        ({"family": "mlp", "pack": 3}, 32, 1, "packs of 3"),
        ({"family": "mlp", "pack": 4}, 24, 4, "packs of 4"),
        ({"family": "vae", "pack": 2}, 32, 1, "no discriminator"),
    ],
)
def test_pack_must_fit_the_batch_and_the_family(
    model: dict, batch: int, devices: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        TrainSpec.model_validate(
            {
                "model": model,
                "data": {"source": "toy:ring8"},
                "train": {"batch_size": batch},
                "resources": {"devices": devices},
            }
        )
