from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from gan_testing import (
    RecordingHooks,
    assert_bitwise_equal,
    mnist_spec,
    ring_spec,
    run_two_ranks_with_resume,
)
from PIL import Image

from shared.specs import TrainSpec
from worker.gan.checkpoint import load_checkpoint
from worker.gan.distributed import find_free_port
from worker.gan.errors import CheckpointError
from worker.gan.sample import load_generator, sample_for_seeds
from worker.gan.train import train
from worker.gan.train_common import STOP_CHECK_EVERY
from worker.gan.vae import build_encoder, build_vae, elbo_terms

VAE_METRICS = {"Loss/VAE/elbo", "Loss/VAE/recon", "Loss/VAE/kl"}
CPU = torch.device("cpu")


def vae_ring_spec(**overrides: Any) -> TrainSpec:
    return ring_spec(model={"family": "vae", "width": 16}, **overrides)


def vae_mnist_spec(**overrides: Any) -> TrainSpec:
    return mnist_spec(model={"family": "vae", "width": 4}, **overrides)


def test_the_encoder_gives_a_mean_and_log_variance_per_latent_dimension() -> None:
    spec = vae_ring_spec()
    assert build_encoder(spec)(torch.randn(5, 2)).shape == (5, 2 * spec.latent.dim)
    images = vae_mnist_spec()
    assert build_encoder(images)(torch.randn(3, 1, 28, 28)).shape == (3, 16)


def test_the_elbo_is_reconstruction_plus_kl_and_kl_vanishes_at_the_prior() -> None:
    x = torch.zeros(4, 2)
    terms = elbo_terms(x, x, torch.zeros(4, 3), torch.zeros(4, 3), decoder_std=1.0)
    assert terms.kl.item() == 0
    assert terms.recon.item() == pytest.approx(math.log(2 * math.pi))  # 2 coords at N(0, 1)
    assert terms.elbo.item() == -terms.loss.item()


def test_vae_on_ring8_trains_through_train_with_finite_elbo_and_every_hook(
    hooks: RecordingHooks,
) -> None:
    result = train(vae_ring_spec(), hooks=hooks)
    assert (result.step, result.stopped_early) == (30, False)
    assert [r.step for r in hooks.reports] == [10, 20, 30]
    for report in hooks.reports:
        assert VAE_METRICS | {"Timing/sec_per_step"} <= report.metrics.keys()
        assert all(math.isfinite(value) for value in report.metrics.values())
        assert report.metrics["Loss/VAE/kl"] >= 0
    assert [step for step, _ in hooks.checkpoints] == [20, 30]
    assert [step for step, _ in hooks.samples] == [15, 30]
    assert hooks.lines[0].startswith("training vae on toy:ring8")
    assert Image.open(io.BytesIO(hooks.samples[-1][1])).size == (512, 512)


def test_vae_on_mnist_trains_and_draws_an_8x8_grid_of_decoded_fixed_latents(
    hooks: RecordingHooks,
) -> None:
    result = train(vae_mnist_spec(), hooks=hooks)
    assert result.step == 12
    assert all(math.isfinite(result.metrics[name]) for name in VAE_METRICS)
    assert Image.open(io.BytesIO(hooks.samples[-1][1])).size == (8 * 30 + 2, 8 * 30 + 2)


def test_a_vae_checkpoint_loads_weights_only_and_samples_like_a_gan(hooks: RecordingHooks) -> None:
    spec = vae_mnist_spec(train={"steps": 4, "batch_size": 8, "seed": 3})
    train(spec, hooks=hooks)
    checkpoint = load_checkpoint(hooks.checkpoints[-1][1])  # torch.load(weights_only=True)
    assert {"generator", "encoder", "optimizer", "fixed_latents", "rng_states"} <= set(checkpoint)
    assert checkpoint["fixed_latents"].shape == (64, 8)

    decoder, trained = load_generator(checkpoint, CPU)
    assert trained == spec and not decoder.training
    reference = build_vae(spec).decoder
    reference.load_state_dict(checkpoint["generator"])
    assert decoder.state_dict().keys() == reference.state_dict().keys()
    first = sample_for_seeds(checkpoint, [3, 1, 4], CPU)
    assert first.png == sample_for_seeds(checkpoint, [3, 1, 4], CPU).png
    assert Image.open(io.BytesIO(first.png)).size == (2 * 30 + 2, 2 * 30 + 2)


@pytest.mark.slow  # trains for seconds: in `make test`, not `make test-fast`
@pytest.mark.parametrize("make_spec", [vae_ring_spec, vae_mnist_spec], ids=["points", "images"])
def test_a_stopped_and_resumed_vae_run_ends_bitwise_equal_to_an_unbroken_one(make_spec) -> None:
    spec = make_spec()
    whole, stopping, resumed = RecordingHooks(), RecordingHooks(stop_at_check=1), RecordingHooks()
    train(spec, hooks=whole)
    assert train(spec, hooks=stopping).step == STOP_CHECK_EVERY
    result = train(spec, hooks=resumed, resume=stopping.last_checkpoint)
    assert (result.step, result.stopped_early) == (spec.train.steps, False)
    assert resumed.lines[0].startswith("resuming vae")
    assert_bitwise_equal(whole.last_checkpoint, resumed.last_checkpoint)
    assert whole.samples[-1] == resumed.samples[-1]


def test_a_gan_checkpoint_does_not_resume_a_vae() -> None:
    gan = RecordingHooks(stop_at_check=1)
    train(ring_spec(model={"family": "mlp", "width": 16}), hooks=gan)
    with pytest.raises(CheckpointError, match="another model"):
        train(vae_ring_spec(), hooks=RecordingHooks(), resume=gan.last_checkpoint)


@pytest.mark.processes  # starts processes: outside `make test-fast`
def test_two_vae_ranks_agree_to_stop_and_resume_bitwise(tmp_path: Path) -> None:
    spec = vae_ring_spec()
    mp.spawn(
        run_two_ranks_with_resume,
        args=(2, find_free_port(), [spec.model_dump_json()], str(tmp_path), 1),
        nprocs=2,
    )
    whole = load_checkpoint((tmp_path / "0-whole.pt").read_bytes())
    resumed = load_checkpoint((tmp_path / "0-resumed.pt").read_bytes())
    assert len(whole["rng_states"]) == 2
    assert_bitwise_equal(whole, resumed)
