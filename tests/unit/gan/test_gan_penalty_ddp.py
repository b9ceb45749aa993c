"""The gradient penalties (WGAN-GP's, R1's) under DistributedDataParallel: two gloo ranks on
the CPU must average to the gradient one process gets on the two ranks' batches put together."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from gan_testing import mnist_spec, ring_spec
from torch.nn.parallel import DistributedDataParallel

from shared.specs import TrainSpec
from worker.gan.distributed import find_free_port, leave_without_finalizers, process_group
from worker.gan.losses import get_loss, gradient_penalty, real_gradient_penalty
from worker.gan.models import build_discriminator

WORLD_SIZE = 2
PER_RANK = 4


def _inputs(spec: TrainSpec) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Real, fake and mixing weights of the whole (both ranks') batch, in float64."""
    generator = torch.Generator().manual_seed(11)
    shape = (2,) if spec.model.family == "mlp" else (1, 28, 28)
    real = torch.randn(WORLD_SIZE * PER_RANK, *shape, generator=generator, dtype=torch.float64)
    fake = torch.randn(WORLD_SIZE * PER_RANK, *shape, generator=generator, dtype=torch.float64)
    mix = torch.rand(WORLD_SIZE * PER_RANK, generator=generator, dtype=torch.float64)
    return real, fake, mix


def _critic_gradients(
    critic: torch.nn.Module,
    spec: TrainSpec,
    real: torch.Tensor,
    fake: torch.Tensor,
    mix: torch.Tensor,
) -> list[torch.Tensor]:
    """D's gradients of its loss plus λ·WGAN-GP penalty or gamma/2·R1, as the training step
    forms them."""
    loss = get_loss(spec.loss.name)
    if spec.loss.r1_gamma:
        real = real.clone().requires_grad_(True)
        real_logits = critic(real)
        total = loss.discriminator(real_logits, critic(fake))
        total = total + spec.loss.r1_gamma / 2 * real_gradient_penalty(real, real_logits)
    else:
        total = loss.discriminator(critic(real), critic(fake))
        total = total + (spec.loss.gp_lambda or 0.0) * gradient_penalty(critic, real, fake, mix)
    total.backward()
    return [parameter.grad.clone() for parameter in critic.parameters()]


def _fresh_critic(spec: TrainSpec) -> torch.nn.Module:
    torch.manual_seed(5)
    return build_discriminator(spec).double()


def penalty_rank(rank: int, port: int, spec_jsons: list[str], out: str) -> None:
    """Spawn target: each rank takes its slice of the batch through a DDP-wrapped critic."""
    torch.set_num_threads(1)
    with process_group(rank, WORLD_SIZE, port):
        for index, spec_json in enumerate(spec_jsons):
            spec = TrainSpec.model_validate_json(spec_json)
            real, fake, mix = _inputs(spec)
            mine = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
            critic = DistributedDataParallel(_fresh_critic(spec))
            gradients = _critic_gradients(critic, spec, real[mine], fake[mine], mix[mine])
            if rank == 0:
                torch.save(gradients, Path(out) / f"{index}.pt")
    leave_without_finalizers()


@pytest.mark.processes  # starts processes: outside `make test-fast`
def test_the_gradient_penalty_under_ddp_matches_one_process_on_the_whole_batch(
    tmp_path: Path,
) -> None:
    # An mlp critic and a dcgan one (convolutions, layer norm), and R1 on an mlp D (no batch
    # norm, whose statistics are per rank); no data is read.
    r1 = {"name": "non_saturating", "r1_gamma": 2.0}
    specs = [ring_spec(loss="wgan_gp"), mnist_spec(loss="wgan_gp"), ring_spec(loss=r1)]
    mp.spawn(
        penalty_rank,
        args=(find_free_port(), [spec.model_dump_json() for spec in specs], str(tmp_path)),
        nprocs=WORLD_SIZE,
    )
    for index, spec in enumerate(specs):
        distributed = torch.load(tmp_path / f"{index}.pt", weights_only=True)
        whole = _critic_gradients(_fresh_critic(spec), spec, *_inputs(spec))
        assert len(distributed) == len(whole)
        for averaged, single in zip(distributed, whole, strict=True):
            assert torch.allclose(averaged, single, rtol=1e-9, atol=1e-9)
        assert any(gradient.abs().max() > 1e-3 for gradient in whole)
