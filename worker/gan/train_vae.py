"""The VAE baseline's training loop: `train.train`'s sections and hooks, with an ELBO step.

`train.train` hands `vae` specs here. Data, seeding, the distributed collectives, the stop
and report schedule, checkpoints that resume bitwise and sample grids of the decoder on the
fixed latents all work as for the GANs; the reparameterisation noise of each step comes from
the LATENTS stream of (job seed, step, rank), as GAN latents do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from shared.specs import TrainSpec
from worker.gan.checkpoint import checkpoint_to_bytes
from worker.gan.distributed import gather_to_rank0
from worker.gan.evaluation import RunEvaluation
from worker.gan.hooks import ProgressReport, TrainingHooks
from worker.gan.priors import sample_latents
from worker.gan.sample import render_png
from worker.gan.seeding import Stream, capture_rng_state, generator_for
from worker.gan.train_common import (
    RunningStats,
    TrainResult,
    end_of_step,
    fixed_sample_latents,
    open_rank,
    restore_rank_rng,
    wrap_ddp,
)
from worker.gan.vae import Vae, build_vae, elbo_terms
from worker.gan.vae_checkpoint import build_vae_checkpoint, restore_vae_state

# Per-step statistics, in the order `_vae_step` returns them; all three are checked for NaN.
VAE_STAT_NAMES = ("Loss/VAE/elbo", "Loss/VAE/recon", "Loss/VAE/kl")
_CPU = torch.device("cpu")


def train_vae(
    spec: TrainSpec,
    *,
    hooks: TrainingHooks,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device = _CPU,
    data_path: Path | None = None,
    resume: dict[str, Any] | None = None,
) -> TrainResult:
    """Train a `vae` spec on this rank; arguments, errors and result as for `train.train`,
    which delegates here."""
    is_main, total = rank == 0, spec.train.steps

    # 1. Load data.
    source = open_rank(spec, rank, world_size, device, data_path)

    # 2. Build networks: one Adam over encoder and decoder.
    vae = build_vae(spec).to(device)
    optimizer = torch.optim.Adam(vae.parameters(), lr=spec.train.lr, betas=spec.train.betas)
    fixed_latents = fixed_sample_latents(spec)

    # 3. Distribute: DDP averages gradients, so every rank keeps identical weights.
    vae_train: nn.Module = wrap_ddp(vae, device) if world_size > 1 else vae

    # 4. Resume.
    start = 0
    if resume is not None:
        start = restore_vae_state(resume, spec=spec, vae=vae, optimizer=optimizer)
        fixed_latents = resume["fixed_latents"]
        restore_rank_rng(resume["rng_states"], rank, world_size, device)

    # 5. Train.
    stats = RunningStats(
        device, source.batch_size * world_size, names=VAE_STAT_NAMES, checked=len(VAE_STAT_NAMES)
    )
    evaluation = RunEvaluation(spec, hooks, device, data_path) if is_main else None
    snapshot = _VaeSnapshots(
        spec, hooks, vae, optimizer, fixed_latents, device, is_main, evaluation
    )
    if is_main:
        hooks.log(
            f"{'resuming' if start else 'training'} vae on {spec.data.source}: "
            f"steps {start + 1}-{total}, batch {source.batch_size} x {world_size} rank(s), {device}"
        )
    for step in range(start + 1, total + 1):
        real = source.batch(step).to(device)
        noise_generator = generator_for(spec.train.seed, Stream.LATENTS, step, rank)
        noise = sample_latents(spec.latent, len(real), noise_generator).to(device)
        stats.add(step, _vae_step(vae_train, optimizer, real, noise, vae.decoder_std))

        # 6. Snapshot. Every rank reaches the same collectives in the same order.
        stopped = end_of_step(step, spec, stats, snapshot, hooks, device, is_main)
        if stopped is not None:
            return stopped
    if is_main:
        hooks.log(f"finished at step {total}")
    return TrainResult(step=max(start, total), stopped_early=False, metrics=snapshot.last_metrics)


def _vae_step(
    vae: nn.Module,
    optimizer: torch.optim.Optimizer,
    real: Tensor,
    noise: Tensor,
    decoder_std: float,
) -> Tensor:
    """One Adam step on -ELBO; returns (elbo, recon, kl), detached, on the device."""
    reconstruction, mean, log_var = vae(real, noise)
    terms = elbo_terms(real, reconstruction, mean, log_var, decoder_std)
    optimizer.zero_grad(set_to_none=True)
    terms.loss.backward()
    optimizer.step()
    return torch.stack([terms.elbo, terms.recon, terms.kl]).detach()


class _VaeSnapshots:
    """What the VAE loop hands to the hooks: reports, decoder samples and checkpoints."""

    def __init__(
        self,
        spec: TrainSpec,
        hooks: TrainingHooks,
        vae: Vae,
        optimizer: torch.optim.Optimizer,
        fixed_latents: Tensor,
        device: torch.device,
        is_main: bool,
        evaluation: RunEvaluation | None,
    ):
        self.spec, self.hooks, self.vae, self.optimizer = spec, hooks, vae, optimizer
        self.fixed_latents, self.device, self.is_main = fixed_latents, device, is_main
        self.last_metrics: dict[str, float] = {}
        self.evaluation = evaluation

    def report(self, step: int, reading: tuple[dict[str, float], float]) -> None:
        metrics, images_per_second = reading
        self.last_metrics = metrics
        total = self.spec.train.steps
        self.hooks.report_progress(ProgressReport(step, total, images_per_second, metrics))
        self.hooks.log(
            f"step {step}/{total}  ELBO {metrics['Loss/VAE/elbo']:.4f}  "
            f"recon {metrics['Loss/VAE/recon']:.4f}  KL {metrics['Loss/VAE/kl']:.4f}  "
            f"{images_per_second:.1f} img/s"
        )

    def samples(self, step: int) -> None:
        """The decoder on the fixed latents, in eval mode, without training it (rank 0)."""
        decoder = self.vae.decoder
        decoder.eval()
        with torch.no_grad():
            generated = decoder(self.fixed_latents.to(self.device))
        decoder.train()
        self.hooks.save_samples(step, render_png(self.spec, generated))

    def evaluate(self, step: int) -> None:
        """The decoder is the VAE's generator: scored like a GAN's, for comparison."""
        if self.evaluation is not None:
            self.evaluation(step, self.vae.decoder)

    def checkpoint(self, step: int) -> None:
        """Every rank sends its RNG states to rank 0, which writes the checkpoint."""
        rng_states = gather_to_rank0(capture_rng_state(self.device))
        if not self.is_main or rng_states is None:
            return
        checkpoint = build_vae_checkpoint(
            step=step,
            spec=self.spec,
            vae=self.vae,
            optimizer=self.optimizer,
            fixed_latents=self.fixed_latents,
            rng_states=rng_states,
        )
        self.hooks.save_checkpoint(step, checkpoint_to_bytes(checkpoint))
