from __future__ import annotations

import json

import pytest
import torch
from gan_testing import RecordingHooks, mnist_spec, ring_spec

from shared.specs import TrainSpec
from worker.gan.checkpoint import checkpoint_spec, checkpoint_to_bytes, load_checkpoint
from worker.gan.ema import GeneratorEma
from worker.gan.models import build_generator
from worker.gan.sample import load_generator
from worker.gan.train import train
from worker.gan.train_common import STOP_CHECK_EVERY

CPU = torch.device("cpu")


def test_the_average_moves_towards_g_by_one_minus_decay_and_copies_buffers() -> None:
    generator = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3))
    ema = GeneratorEma(generator, decay=0.75)
    assert not ema.module.training
    assert not any(parameter.requires_grad for parameter in ema.module.parameters())
    before = generator[0].weight.detach().clone()
    with torch.no_grad():
        generator[0].weight.add_(4.0)
        generator[1].running_mean.fill_(2.0)
    ema.update(generator)
    assert torch.allclose(ema.module[0].weight, before + 0.25 * 4.0)
    assert torch.equal(ema.module[1].running_mean, torch.full((3,), 2.0))


def test_checkpoints_keep_the_average_and_sampling_prefers_it() -> None:
    hooks = RecordingHooks()
    train(ring_spec(train={"steps": 20, "batch_size": 16, "ema_decay": 0.5}), hooks=hooks)
    checkpoint = hooks.last_checkpoint
    average, current = checkpoint["generator_ema"], checkpoint["generator"]
    assert average.keys() == current.keys()
    assert not torch.equal(average["0.weight"], current["0.weight"])
    buffers = {name for name, _ in build_generator(checkpoint_spec(checkpoint)).named_buffers()}
    for name, tensor in average.items():  # its own copy of every G tensor; weights trail G's
        assert (tensor.shape, tensor.dtype) == (current[name].shape, current[name].dtype), name
        assert torch.equal(tensor, current[name]) == (name in buffers), name
    generator, _ = load_generator(checkpoint, CPU)
    assert torch.equal(generator[0].weight, average["0.weight"])
    sampled = generator.state_dict()
    assert sampled.keys() == average.keys()
    assert all(torch.equal(sampled[name], average[name]) for name in average)
    # A resumed run restores the saved average, not G: one step on, it is that average moved
    # towards the new G by 1 - decay.
    resumed = RecordingHooks()
    spec = ring_spec(train={"steps": 21, "batch_size": 16, "ema_decay": 0.5})
    train(spec, hooks=resumed, resume=checkpoint)
    assert [step for step, _ in resumed.checkpoints] == [21]
    after = resumed.last_checkpoint
    assert_one_update_from(after["generator_ema"], average, after["generator"], 0.5, spec)


def test_without_ema_checkpoints_have_no_average_and_sampling_uses_g() -> None:
    hooks = RecordingHooks()
    train(ring_spec(train={"steps": 2, "batch_size": 8}), hooks=hooks)
    checkpoint = hooks.last_checkpoint
    assert checkpoint["generator_ema"] is None
    generator, _ = load_generator(checkpoint, CPU)
    assert torch.equal(generator[0].weight, checkpoint["generator"]["0.weight"])


@pytest.mark.slow  # trains for seconds: in `make test`, not `make test-fast`
@pytest.mark.parametrize("make_spec", [ring_spec, mnist_spec], ids=["mlp", "dcgan"])
def test_switching_ema_on_at_resume_starts_the_average_at_the_restored_g(make_spec) -> None:
    plain = make_spec(train={"steps": 12, "batch_size": 8})
    stopping = RecordingHooks(stop_at_check=1)
    train(plain, hooks=stopping)
    with_ema = make_spec(train={"steps": STOP_CHECK_EVERY + 1, "batch_size": 8, "ema_decay": 0.9})
    resumed = RecordingHooks()
    train(with_ema, hooks=resumed, resume=stopping.last_checkpoint)
    average = resumed.last_checkpoint["generator_ema"]
    restored = stopping.last_checkpoint["generator"]
    assert average is not None and average.keys() == restored.keys()
    # Stopped at step 10, resumed for one step: the average started at the restored G and
    # moved once towards the G of step 11.
    assert stopping.checkpoints[-1][0] == STOP_CHECK_EVERY
    assert resumed.checkpoints[-1][0] == STOP_CHECK_EVERY + 1
    decay = GeneratorEma(torch.nn.Linear(1, 1), 0.9).decay_at(STOP_CHECK_EVERY + 1)
    current = resumed.last_checkpoint["generator"]
    assert_one_update_from(average, restored, current, decay, with_ema)


def assert_one_update_from(
    average: dict[str, torch.Tensor],
    start: dict[str, torch.Tensor],
    generator: dict[str, torch.Tensor],
    decay: float,
    spec: TrainSpec,
) -> None:
    """`average` is `start` after one EMA update towards `generator`'s weights with `decay`:
    every parameter is decay·start + (1 - decay)·G, every buffer (batch-norm statistics) G's."""
    buffers = {name for name, _ in build_generator(spec).named_buffers()}
    assert average.keys() == start.keys() == generator.keys()
    for name in average:
        if name in buffers:
            expected = generator[name]
        else:
            expected = start[name].lerp(generator[name], 1 - decay)
            assert not torch.equal(expected, start[name]), f"{name}: G did not move"
        assert torch.allclose(average[name], expected, rtol=1e-5, atol=1e-7), name


def test_format_1_checkpoints_still_load_and_resume() -> None:
    stopping = RecordingHooks(stop_at_check=1)
    spec = ring_spec()
    train(spec, hooks=stopping)
    old = dict(stopping.last_checkpoint)
    del old["generator_ema"], old["grad_scalers"]
    old["format_version"] = 1
    # Format 1 specs wrote the loss as its bare name and knew none of the later model options.
    spec_fields = json.loads(old["spec_json"])
    spec_fields["loss"] = "non_saturating"
    del spec_fields["model"]["depth"], spec_fields["model"]["generator_norm"]
    old["spec_json"] = json.dumps(spec_fields, separators=(",", ":"))
    loaded = load_checkpoint(checkpoint_to_bytes(old))
    load_generator(loaded, CPU)
    assert train(spec, hooks=RecordingHooks(), resume=loaded).step == spec.train.steps


def test_the_decay_ramps_up_so_the_initial_weights_fade_fast() -> None:
    ema = GeneratorEma(torch.nn.Linear(2, 2), decay=0.999)
    assert ema.decay_at(1) == pytest.approx(2 / 11)
    assert ema.decay_at(100) == pytest.approx(101 / 110)
    assert ema.decay_at(100_000) == 0.999
    initial_weight_left = 1.0
    for step in range(1, 2001):
        initial_weight_left *= ema.decay_at(step)
    assert initial_weight_left < 1e-3, "without a ramp 0.999**2000 = 13% of the init would remain"
