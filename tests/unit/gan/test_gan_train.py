from __future__ import annotations

import io
import math

import pytest
import torch
from gan_testing import RecordingHooks, ring_spec
from PIL import Image

from shared.specs import TrainSpec
from worker.gan.checkpoint import CHECKPOINT_FORMAT_VERSION, load_checkpoint
from worker.gan.data import Ring8Source
from worker.gan.errors import NonFiniteLossError
from worker.gan.train import train
from worker.gan.train_common import REPORT_EVERY, STOP_CHECK_EVERY

METRICS = {"Loss/D/loss", "Loss/G/loss", "Loss/scores/real", "Loss/scores/fake"}


def test_mlp_on_ring8_calls_every_hook_on_schedule(
    tiny_ring_spec: TrainSpec, hooks: RecordingHooks
) -> None:
    result = train(tiny_ring_spec, hooks=hooks)
    assert (result.step, result.stopped_early) == (30, False)
    assert [r.step for r in hooks.reports] == [10, 20, 30]
    assert [step for step, _ in hooks.checkpoints] == [20, 30]
    assert [step for step, _ in hooks.samples] == [15, 30]
    assert hooks.stop_checks == 2  # steps 10 and 20; the last step needs no stop check
    for report in hooks.reports:
        assert report.total_steps == 30 and report.images_per_second > 0
        assert METRICS | {"Timing/sec_per_step"} <= report.metrics.keys()
        assert all(math.isfinite(value) for value in report.metrics.values())
    assert hooks.lines[0].startswith("training mlp on toy:ring8")
    assert hooks.lines[-1] == "finished at step 30"
    assert Image.open(io.BytesIO(hooks.samples[0][1])).size == (512, 512)


@pytest.mark.slow  # trains for seconds: in `make test`, not `make test-fast`
def test_dcgan_on_mnist_trains_with_finite_losses_and_draws_an_8x8_grid(
    tiny_mnist_spec: TrainSpec, hooks: RecordingHooks
) -> None:
    result = train(tiny_mnist_spec, hooks=hooks)
    assert result.step == 12
    assert [r.step for r in hooks.reports] == [REPORT_EVERY, 12]
    assert all(math.isfinite(result.metrics[name]) for name in METRICS)
    assert [step for step, _ in hooks.samples] == [5, 10, 12]
    assert [step for step, _ in hooks.checkpoints] == [10, 12]
    assert Image.open(io.BytesIO(hooks.samples[-1][1])).size == (8 * 30 + 2, 8 * 30 + 2)


def test_checkpoints_load_with_weights_only_and_carry_spec_and_latents(
    tiny_mnist_spec: TrainSpec, hooks: RecordingHooks
) -> None:
    train(tiny_mnist_spec, hooks=hooks)
    checkpoint = hooks.last_checkpoint  # torch.load(..., weights_only=True) inside
    assert checkpoint["format_version"] == CHECKPOINT_FORMAT_VERSION
    assert checkpoint["step"] == 12
    assert TrainSpec.model_validate_json(checkpoint["spec_json"]) == tiny_mnist_spec
    assert checkpoint["latent"] == {"dim": 8, "prior": "gaussian"}
    assert checkpoint["fixed_latents"].shape == (64, 8)
    assert "1.running_mean" not in checkpoint["generator"]
    assert "2.running_mean" in checkpoint["generator"]
    assert len(checkpoint["rng_states"]) == 1
    assert checkpoint["rng_states"][0]["numpy"]["keys"].shape == (624,)


@pytest.mark.slow  # trains for seconds: in `make test`, not `make test-fast`
def test_the_same_spec_and_seed_give_bitwise_identical_checkpoints(
    tiny_ring_spec: TrainSpec,
) -> None:
    first, second = RecordingHooks(), RecordingHooks()
    train(tiny_ring_spec, hooks=first)
    train(tiny_ring_spec, hooks=second)
    assert first.checkpoints == second.checkpoints
    assert first.samples == second.samples


@pytest.mark.slow  # trains for seconds: in `make test`, not `make test-fast`
def test_another_seed_gives_other_weights(tiny_ring_spec: TrainSpec) -> None:
    first, second = RecordingHooks(), RecordingHooks()
    train(tiny_ring_spec, hooks=first)
    train(ring_spec(train={"steps": 30, "batch_size": 32, "seed": 8}), hooks=second)
    assert first.checkpoints[-1][1] != second.checkpoints[-1][1]


def test_should_stop_ends_the_run_early_with_a_checkpoint_of_that_step(
    tiny_ring_spec: TrainSpec,
) -> None:
    hooks = RecordingHooks(stop_at_check=1)
    result = train(tiny_ring_spec, hooks=hooks)
    assert (result.step, result.stopped_early) == (STOP_CHECK_EVERY, True)
    assert [step for step, _ in hooks.checkpoints] == [STOP_CHECK_EVERY]
    assert hooks.last_checkpoint["step"] == STOP_CHECK_EVERY
    assert hooks.lines[-1].startswith(f"stopped on request after step {STOP_CHECK_EVERY}")


def test_a_nan_loss_stops_training_with_an_error_naming_the_step(
    tiny_ring_spec: TrainSpec, hooks: RecordingHooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_batch = Ring8Source.batch

    def poisoned(self: Ring8Source, step: int) -> torch.Tensor:
        batch = clean_batch(self, step)
        return batch * float("nan") if step == 4 else batch

    monkeypatch.setattr(Ring8Source, "batch", poisoned)
    with pytest.raises(NonFiniteLossError, match="at step 4"):
        train(tiny_ring_spec, hooks=hooks)
    assert hooks.checkpoints == [] and hooks.reports == []


def test_checkpoint_bytes_are_refused_when_not_a_checkpoint() -> None:
    from worker.gan.errors import CheckpointError

    with pytest.raises(CheckpointError):
        load_checkpoint(b"not a checkpoint")
