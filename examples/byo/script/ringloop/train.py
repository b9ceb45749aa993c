"""The loop: a small MLP GAN with the non-saturating loss, trained with DDP across the job's
ranks, checkpointed and resumable through ganforge's runtime (worker/runtime.py)."""

from __future__ import annotations

import math
import time
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.functional import softplus
from torch.nn.parallel import DistributedDataParallel

from worker import runtime

from .nets import Critic, Generator


def ring(count: int, generator: torch.Generator) -> Tensor:
    """`count` points of eight Gaussians (std 0.02) on the unit circle."""
    modes = torch.randint(0, 8, (count,), generator=generator)
    angles = modes.float() * (2 * math.pi / 8)
    centres = torch.stack([angles.cos(), angles.sin()], dim=1)
    return centres + 0.02 * torch.randn(count, 2, generator=generator)


def main(args: dict[str, Any]) -> None:
    steps, batch = int(args.get("steps", 2000)), int(args.get("batch_size", 256))
    width, latent_dim = int(args.get("width", 64)), int(args.get("latent_dim", 8))
    every = int(args.get("checkpoint_every", 500))
    pause = float(args.get("seconds_per_step", 0.0))  # to watch it, or to preempt it in tests
    torch.manual_seed(int(args.get("seed", 0)))
    device = runtime.device()
    generator = Generator(latent_dim=latent_dim, data_shape=(2,), width=width).to(device)
    critic = Critic(width=width).to(device)
    g_opt = torch.optim.Adam(generator.parameters(), lr=1e-3, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(critic.parameters(), lr=1e-3, betas=(0.5, 0.999))
    start = 0
    resumed = runtime.latest_checkpoint()
    if resumed is not None:
        start = resumed.step
        parts = (generator, critic, g_opt, d_opt)
        for part, saved in zip(parts, resumed.state["parts"], strict=True):
            part.load_state_dict(saved)
        runtime.log(f"resumed at step {start}")
    if runtime.world_size() > 1:
        generator, critic = DistributedDataParallel(generator), DistributedDataParallel(critic)
    data = torch.Generator().manual_seed(1000 + runtime.rank() + 7919 * start)
    fixed = torch.randn(256, latent_dim, generator=torch.Generator().manual_seed(0))

    def state() -> dict[str, Any]:
        parts = (_inner(generator), _inner(critic), g_opt, d_opt)
        return {"parts": [part.state_dict() for part in parts]}

    for step in range(start + 1, steps + 1):
        real = ring(batch, data).to(device)
        fake = generator(torch.randn(batch, latent_dim, generator=data).to(device))
        d_loss = softplus(critic(fake.detach())).mean() + softplus(-critic(real)).mean()
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        g_loss = softplus(-critic(fake)).mean()
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()
        runtime.report(
            step, {"Loss/D/loss": d_loss.item(), "Loss/G/loss": g_loss.item()}, images=batch
        )
        if step % every == 0 or step == steps:
            runtime.save_checkpoint(step, state())
            with torch.no_grad():
                runtime.save_samples(step, _inner(generator)(fixed.to(device)))
        if runtime.should_stop():  # cancelled or preempted: keep this step and return
            runtime.save_checkpoint(step, state())
            runtime.log(f"stopping at step {step} as asked")
            return
        if pause:
            time.sleep(pause)
    runtime.save_artifact("final-step.txt", str(steps))
    # Sampling jobs (seeds, interpolation, ...) on this generator, as on a built-in job's.
    latent, data = {"dim": latent_dim}, {"source": "toy:ring8"}
    runtime.save_generator(steps, generator, latent, data, {"width": width})


def _inner(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, DistributedDataParallel) else module
