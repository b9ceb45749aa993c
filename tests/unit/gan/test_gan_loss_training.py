from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from gan_testing import RecordingHooks, mnist_spec, ring_spec

from shared.specs import TrainSpec
from worker.gan import train_common as loop_module
from worker.gan.data import BatchSource, open_data
from worker.gan.errors import NonFiniteLossError
from worker.gan.models import build_discriminator
from worker.gan.train import train

LOSS_NAMES = ["non_saturating", "least_squares", "hinge", "wgan_gp"]
METRICS = ("Loss/D/loss", "Loss/G/loss", "Loss/D/reg", "Loss/scores/real", "Loss/scores/fake")


def _assert_finite_metrics(hooks: RecordingHooks) -> None:
    assert hooks.reports
    for report in hooks.reports:
        assert all(math.isfinite(report.metrics[name]) for name in METRICS)


@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_every_loss_trains_an_mlp_on_ring8_with_finite_losses(loss: str) -> None:
    hooks = RecordingHooks()
    spec = ring_spec(loss=loss, train={"steps": 10, "batch_size": 32, "seed": 7})
    assert train(spec, hooks=hooks).step == 10
    _assert_finite_metrics(hooks)
    reg = hooks.reports[-1].metrics["Loss/D/reg"]
    # One-sided (the default) charges nothing while the critic's slopes stay below 1.
    assert reg >= 0 if loss == "wgan_gp" else reg == 0


@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_every_loss_trains_a_dcgan_on_mnist_with_finite_losses(loss: str) -> None:
    hooks = RecordingHooks()
    spec = mnist_spec(loss={"name": loss, "critic_steps": 2} if loss == "wgan_gp" else loss)
    spec = spec.model_copy(update={"train": spec.train.model_copy(update={"steps": 4})})
    assert train(spec, hooks=hooks).step == 4
    _assert_finite_metrics(hooks)
    assert hooks.lines[0].endswith(f"loss {loss}, fp32")


def test_a_wgan_gp_dcgan_critic_uses_layer_norm_not_batch_norm() -> None:
    critic = build_discriminator(mnist_spec(loss="wgan_gp"))
    kinds = {type(module) for module in critic.modules()}
    assert torch.nn.GroupNorm in kinds and torch.nn.BatchNorm2d not in kinds
    assert torch.nn.BatchNorm2d in {type(m) for m in build_discriminator(mnist_spec()).modules()}


class _WatchedSource:
    """A batch source that records which draws were asked for and can poison one."""

    def __init__(self, source: BatchSource, asked: list[int], poisoned_draw: int | None):
        self.source, self.asked, self.poisoned_draw = source, asked, poisoned_draw
        self.batch_size = source.batch_size

    def batch(self, step: int) -> torch.Tensor:
        self.asked.append(step)
        batch = self.source.batch(step)
        return batch * float("nan") if step == self.poisoned_draw else batch


def _watch_data(monkeypatch: pytest.MonkeyPatch, poisoned_draw: int | None = None) -> list[int]:
    """Wrap the loop's data source; returns the list of draws it is asked for."""
    asked: list[int] = []

    def watched_open(*args: Any, **kwargs: Any) -> BatchSource:
        return _WatchedSource(open_data(*args, **kwargs), asked, poisoned_draw)

    monkeypatch.setattr(loop_module, "open_data", watched_open)
    return asked


def test_each_critic_step_trains_on_its_own_real_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = _watch_data(monkeypatch)
    spec = ring_spec(loss={"name": "hinge", "critic_steps": 3}, train={"steps": 4, "seed": 1})
    train(spec, hooks=RecordingHooks())
    assert asked == list(range(1, 13))  # 4 steps x 3 critic steps, each batch drawn once


def test_a_nan_in_a_later_critic_step_names_its_training_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _watch_data(monkeypatch, poisoned_draw=15)  # step 3's fifth and last critic step
    with pytest.raises(NonFiniteLossError, match="at step 3"):
        train(ring_spec(loss="wgan_gp"), hooks=RecordingHooks())


def test_wgan_gp_gets_the_papers_optimiser_unless_the_spec_sets_one() -> None:
    spec = ring_spec(loss="wgan_gp")
    assert (spec.train.lr, spec.train.betas) == (1e-4, (0.0, 0.9))
    assert (spec.loss.gp_lambda, spec.loss.critic_steps) == (10.0, 5)
    own = ring_spec(loss="wgan_gp", train={"lr": 3e-4})
    assert (own.train.lr, own.train.betas) == (3e-4, (0.0, 0.9))
    assert TrainSpec.model_validate_json(spec.model_dump_json()) == spec


def test_the_two_sided_penalty_is_charged_from_the_start() -> None:
    hooks = RecordingHooks()
    two_sided = {"name": "wgan_gp", "penalty": "two_sided"}
    train(ring_spec(loss=two_sided, train={"steps": 10, "batch_size": 32, "seed": 7}), hooks=hooks)
    assert hooks.reports[-1].metrics["Loss/D/reg"] > 0


def test_learning_rate_schedules_are_a_function_of_the_step() -> None:
    from worker.gan.train import learning_rate

    constant = ring_spec()
    linear = ring_spec(train={"steps": 100, "batch_size": 32, "lr": 1e-3, "lr_schedule": "linear"})
    cosine = ring_spec(train={"steps": 100, "batch_size": 32, "lr": 1e-3, "lr_schedule": "cosine"})
    assert learning_rate(constant, 30) == constant.train.lr
    assert learning_rate(linear, 1) == 1e-3 and learning_rate(linear, 51) == pytest.approx(5e-4)
    assert learning_rate(linear, 100) == pytest.approx(1e-5)
    assert learning_rate(cosine, 51) == pytest.approx(5e-4)
    assert learning_rate(cosine, 100) < 1e-6


def test_a_resumed_run_with_a_schedule_ends_bitwise_equal_to_an_unbroken_one() -> None:
    from worker.gan.checkpoint import load_checkpoint

    train_params = {"steps": 30, "batch_size": 32, "seed": 7, "lr_schedule": "cosine"}
    whole = RecordingHooks()
    train(ring_spec(train=train_params), hooks=whole)
    stopped = RecordingHooks(stop_at_check=1)
    train(ring_spec(train=train_params), hooks=stopped)
    resumed = RecordingHooks()
    train(ring_spec(train=train_params), hooks=resumed, resume=stopped.last_checkpoint)
    a = load_checkpoint(whole.checkpoints[-1][1])["generator"]
    b = load_checkpoint(resumed.checkpoints[-1][1])["generator"]
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_r1_is_charged_on_the_real_batch_and_reported_as_the_regulariser() -> None:
    params = {"steps": 10, "batch_size": 32, "seed": 7}
    hooks = RecordingHooks()
    spec = ring_spec(loss={"name": "non_saturating", "r1_gamma": 1.0}, train=params)
    train(spec, hooks=hooks)
    _assert_finite_metrics(hooks)
    assert hooks.reports[-1].metrics["Loss/D/reg"] > 0
    plain = RecordingHooks()
    train(ring_spec(train=params), hooks=plain)
    # Same seed and data: only the penalty differs, so D (and its scores) move differently.
    assert hooks.reports[-1].metrics["Loss/scores/real"] != pytest.approx(
        plain.reports[-1].metrics["Loss/scores/real"], rel=1e-6
    )


def test_r1_belongs_to_the_non_wasserstein_losses() -> None:
    with pytest.raises(ValueError, match="r1_gamma"):
        ring_spec(loss={"name": "wgan_gp", "r1_gamma": 1.0})
    assert ring_spec(loss={"name": "hinge", "r1_gamma": 0.5}).loss.r1_gamma == 0.5
