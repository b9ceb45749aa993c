"""PacGAN packing: the discriminator judges `pack` samples at once."""

import math

import pytest
import torch
from gan_testing import RecordingHooks, mnist_spec, ring_spec

from shared.specs import TrainSpec
from worker.gan.models import Packed, build_discriminator
from worker.gan.step import STAT_NAMES
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


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def relu(x: float) -> float:
    return max(0.0, x)


# Each loss's D term is convex in the logits, so its mean is at least the term of the mean
# logits (Jensen): a lower bound from the reported mean scores; WGAN's critic term is linear,
# so it is exactly the mean fake score minus the mean real score.
D_LOSS_FLOOR = {
    "non_saturating": lambda real, fake: softplus(-real) + softplus(fake),
    "hinge": lambda real, fake: relu(1 - real) + relu(1 + fake),
    "least_squares": lambda real, fake: 0.5 * (real - 1) ** 2 + 0.5 * fake**2,
}


@pytest.mark.parametrize("loss", ["non_saturating", "hinge", "least_squares", "wgan_gp"])
def test_a_packed_gan_trains_with_every_loss(loss: str) -> None:
    hooks = RecordingHooks()
    spec = ring_spec(model={"family": "mlp", "width": 16, "pack": 2}, loss=loss)
    train(spec, hooks=hooks)
    assert all(math.isfinite(v) for r in hooks.reports for v in r.metrics.values()), loss
    # The discriminator that trained is the packed one: its first layer takes 2 points (x, y).
    assert hooks.last_checkpoint["discriminator"]["network.0.weight"].shape == (16, 2 * 2)
    assert [(r.step, r.total_steps) for r in hooks.reports] == [(10, 30), (20, 30), (30, 30)]
    for report in hooks.reports:
        metrics = report.metrics
        assert set(metrics) == {*STAT_NAMES, "Timing/sec_per_step"}
        # Images, not packs: a step's D sees batch_size real images per critic step.
        images_per_step = spec.train.batch_size * spec.loss.critic_steps
        assert report.images_per_second * metrics["Timing/sec_per_step"] == pytest.approx(
            images_per_step
        )
        real, fake = metrics["Loss/scores/real"], metrics["Loss/scores/fake"]
        if loss == "wgan_gp":
            assert metrics["Loss/D/loss"] == pytest.approx(fake - real, abs=1e-6)
            assert metrics["Loss/D/reg"] >= 0  # the gradient penalty, before lambda
        else:
            assert metrics["Loss/D/loss"] >= D_LOSS_FLOOR[loss](real, fake) - 1e-6
            assert metrics["Loss/D/reg"] == 0  # no regulariser
        if loss in ("non_saturating", "least_squares"):
            assert metrics["Loss/G/loss"] > 0  # softplus and squares


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
