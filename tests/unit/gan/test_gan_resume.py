from __future__ import annotations

from pathlib import Path

import pytest
import torch.multiprocessing as mp
from gan_testing import (
    RecordingHooks,
    assert_bitwise_equal,
    mnist_spec,
    ring_spec,
    run_two_ranks_with_resume,
    stop_then_resume,
)

from shared.specs import TrainSpec
from worker.gan.checkpoint import load_checkpoint
from worker.gan.distributed import find_free_port
from worker.gan.errors import CheckpointError
from worker.gan.train import train

WEIGHT_KEYS = ("generator", "discriminator", "g_optimizer", "d_optimizer", "generator_ema")


def _wgan_gp_with_ema() -> TrainSpec:
    loss = {"name": "wgan_gp", "critic_steps": 2}  # more than one, fewer than 5 for speed
    return ring_spec(loss=loss, train={"steps": 20, "batch_size": 32, "ema_decay": 0.9})


def _hinge_dcgan_with_ema() -> TrainSpec:
    return mnist_spec(loss="hinge", train={"steps": 12, "batch_size": 8, "ema_decay": 0.99})


@pytest.mark.parametrize(
    "make_spec",
    [ring_spec, mnist_spec, _wgan_gp_with_ema, _hinge_dcgan_with_ema],
    ids=["mlp", "dcgan", "mlp-wgan_gp-ema", "dcgan-hinge-ema"],
)
@pytest.mark.slow  # trains for seconds: in `make test`, not `make test-fast`
def test_a_stopped_and_resumed_run_ends_bitwise_equal_to_an_unbroken_one(make_spec) -> None:
    spec = make_spec()
    whole, resumed = stop_then_resume(spec)
    assert resumed.lines[0].startswith("resuming")
    assert [r.step for r in resumed.reports] == [r.step for r in whole.reports][1:]
    # Every entry, weights and optimiser and RNG states included, bit for bit. (The bytes
    # themselves may differ: pickle shares repeated strings by object identity.)
    assert_bitwise_equal(whole.last_checkpoint, resumed.last_checkpoint)
    assert whole.samples[-1] == resumed.samples[-1]


def test_resuming_with_another_model_is_refused(tiny_ring_spec: TrainSpec) -> None:
    hooks = RecordingHooks(stop_at_check=1)
    train(tiny_ring_spec, hooks=hooks)
    wider = ring_spec(model={"family": "mlp", "width": 32})
    with pytest.raises(CheckpointError, match="another model"):
        train(wider, hooks=RecordingHooks(), resume=hooks.last_checkpoint)


@pytest.mark.processes  # starts processes: outside `make test-fast`
def test_two_ranks_agree_to_stop_and_resume_bitwise(tmp_path: Path) -> None:
    specs = [
        ring_spec(),
        mnist_spec(train={"steps": 12, "batch_size": 8, "seed": 3}),
        _wgan_gp_with_ema(),  # the penalty and critic steps under DDP, the average on rank 0
    ]
    port = find_free_port()
    mp.spawn(
        run_two_ranks_with_resume,
        args=(2, port, [spec.model_dump_json() for spec in specs], str(tmp_path), 1),
        nprocs=2,
    )
    for index in range(len(specs)):
        whole = load_checkpoint((tmp_path / f"{index}-whole.pt").read_bytes())
        resumed = load_checkpoint((tmp_path / f"{index}-resumed.pt").read_bytes())
        assert len(whole["rng_states"]) == 2
        for key in (*WEIGHT_KEYS, "rng_states"):
            assert_bitwise_equal(whole[key], resumed[key])
