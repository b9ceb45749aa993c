"""The training loop: one function, in numbered sections, that talks out only through hooks.

Determinism: every random draw inside the loop (data, latents, WGAN-GP's mixing weights)
comes from a generator seeded by (job seed, stream, step, critic sub-step, rank), so on the CPU
a run stopped at step s and resumed from its checkpoint ends bitwise equal to a run that never
stopped; the generator average and fp16 loss-scaler states travel in the checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from shared.specs import TrainSpec
from worker.gan.checkpoint import build_checkpoint, checkpoint_to_bytes, restore_training_state
from worker.gan.distributed import gather_to_rank0
from worker.gan.ema import GeneratorEma
from worker.gan.evaluation import RunEvaluation
from worker.gan.hooks import ProgressReport, TrainingHooks
from worker.gan.losses import get_loss, top_k_fraction
from worker.gan.models import build_discriminator, build_generator
from worker.gan.precision import Precision, resolve_precision
from worker.gan.sample import render_png
from worker.gan.seeding import (
    capture_rng_state,
)
from worker.gan.step import Networks, Penalty, StepInputs, memory_format_for, train_step
from worker.gan.train_common import (
    RunningStats,
    TrainResult,
    end_of_step,
    fixed_sample_latents,
    open_rank,
    restore_rank_rng,
    wrap_ddp,
)
from worker.gan.train_vae import train_vae

_CPU = torch.device("cpu")


def train(
    spec: TrainSpec,
    *,
    hooks: TrainingHooks,
    rank: int = 0,
    world_size: int = 1,
    device: torch.device = _CPU,
    data_path: Path | None = None,
    resume: dict[str, Any] | None = None,
) -> TrainResult:
    """Train `spec` on this rank; with world_size > 1 the caller has set up the process group.

    `resume` is a loaded checkpoint: training continues after its step. Raises
    `NonFiniteLossError` when a loss turns NaN or infinite, `DataError` for bad data and
    `CheckpointError` for a checkpoint that does not fit `spec`. A `vae` spec runs
    `train_vae.train_vae`, the same sections with an ELBO step.
    """
    if spec.model.family == "vae":
        return train_vae(
            spec,
            hooks=hooks,
            rank=rank,
            world_size=world_size,
            device=device,
            data_path=data_path,
            resume=resume,
        )
    is_main, total = rank == 0, spec.train.steps

    # 1. Load data.
    source = open_rank(spec, rank, world_size, device, data_path)

    # 2. Build networks.
    precision, precision_note = resolve_precision(spec, device)
    nets = _build_networks(spec, device, precision)
    fixed_latents = fixed_sample_latents(spec)

    # 3. Distribute: DDP averages gradients, so every rank keeps identical weights.
    if world_size > 1:
        nets = _distribute(nets, device)

    # 4. Resume.
    start = 0
    if resume is not None:
        start = restore_training_state(
            resume,
            spec=spec,
            generator=nets.generator,
            discriminator=nets.discriminator,
            g_optimizer=nets.g_optimizer,
            d_optimizer=nets.d_optimizer,
            generator_ema=nets.ema_module,
            grad_scalers=nets.scalers,
        )
        fixed_latents = resume["fixed_latents"]
        restore_rank_rng(resume["rng_states"], rank, world_size, device)

    # 5. Train: critic_steps discriminator steps, one generator step, the average follows G.
    loss = get_loss(spec.loss.name)
    penalty = Penalty.of(spec)
    inputs = StepInputs(spec, source, rank, device, penalised=loss.penalised)
    stats = RunningStats(
        device,
        images_per_step=source.batch_size * world_size * spec.loss.critic_steps,
        checked=3,  # D loss, G loss and the penalty
    )
    evaluation = RunEvaluation(spec, hooks, device, data_path) if is_main else None
    snapshot = _Snapshots(spec, hooks, nets, fixed_latents, device, is_main, evaluation)
    if is_main:
        hooks.log(
            f"{'resuming' if start else 'training'} {spec.model.family} on {spec.data.source}: "
            f"steps {start + 1}-{total}, batch {source.batch_size} x {world_size} rank(s), "
            f"{device}, loss {spec.loss.name}, {precision.name}"
        )
        if precision_note:
            hooks.log(precision_note)
    for step in range(start + 1, total + 1):
        set_learning_rate(nets, spec, step)
        g_fraction = top_k_fraction(spec.loss.top_k, step)
        stats.add(
            step, train_step(nets, loss, penalty, precision, inputs.of_step(step), g_fraction)
        )
        if nets.generator_ema is not None:
            nets.generator_ema.update(nets.generator, step)

        # 6. Snapshot. Every rank reaches the same collectives in the same order.
        stopped = end_of_step(step, spec, stats, snapshot, hooks, device, is_main)
        if stopped is not None:
            return stopped
    if is_main:
        hooks.log(f"finished at step {total}")
    return TrainResult(step=max(start, total), stopped_early=False, metrics=snapshot.last_metrics)


def learning_rate(spec: TrainSpec, step: int) -> float:
    """The learning rate of `step` (1-based) under `train.lr_schedule`: a function of the step
    alone, so a resumed run picks up exactly where it stopped."""
    base, progress = spec.train.lr, (step - 1) / max(1, spec.train.steps)
    if spec.train.lr_schedule == "linear":
        return base * (1 - progress)
    if spec.train.lr_schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * progress))
    return base


def set_learning_rate(nets: Networks, spec: TrainSpec, step: int) -> None:
    if spec.train.lr_schedule == "constant":
        return
    rate = learning_rate(spec, step)
    for optimizer in (nets.g_optimizer, nets.d_optimizer):
        for group in optimizer.param_groups:
            group["lr"] = rate


def _build_networks(spec: TrainSpec, device: torch.device, precision: Precision) -> Networks:
    memory_format = memory_format_for(spec, device)
    generator = _place(build_generator(spec), device, memory_format)
    discriminator = _place(build_discriminator(spec), device, memory_format)
    lr, betas, ema_decay = spec.train.lr, spec.train.betas, spec.train.ema_decay
    return Networks(
        generator=generator,
        discriminator=discriminator,
        g_train=generator,
        d_train=discriminator,
        g_optimizer=torch.optim.Adam(generator.parameters(), lr=lr, betas=betas),
        d_optimizer=torch.optim.Adam(discriminator.parameters(), lr=lr, betas=betas),
        g_scaler=precision.grad_scaler(),
        d_scaler=precision.grad_scaler(),
        generator_ema=None if ema_decay is None else GeneratorEma(generator, ema_decay),
    )


def _place(
    network: nn.Module, device: torch.device, memory_format: torch.memory_format
) -> nn.Module:
    # Module.to takes memory_format (4-D weights only); torch's type stubs leave it out.
    return network.to(device, memory_format=memory_format)  # type: ignore[call-overload]


def _distribute(nets: Networks, device: torch.device) -> Networks:
    g_train = wrap_ddp(nets.generator, device)
    d_train = wrap_ddp(nets.discriminator, device)
    # DDP has just copied rank 0's weights to every rank: the average starts again from those.
    ema = nets.generator_ema
    if ema is not None:
        ema = GeneratorEma(nets.generator, ema.decay)
    return replace(nets, g_train=g_train, d_train=d_train, generator_ema=ema)


class _Snapshots:
    """What the loop hands to the hooks: reports, sample pictures and checkpoints."""

    def __init__(
        self,
        spec: TrainSpec,
        hooks: TrainingHooks,
        nets: Networks,
        fixed_latents: Tensor,
        device: torch.device,
        is_main: bool,
        evaluation: RunEvaluation | None,
    ):
        self.spec, self.hooks, self.nets = spec, hooks, nets
        self.fixed_latents, self.device, self.is_main = fixed_latents, device, is_main
        self.last_metrics: dict[str, float] = {}
        self.evaluation = evaluation

    def report(self, step: int, reading: tuple[dict[str, float], float]) -> None:
        metrics, images_per_second = reading
        self.last_metrics = metrics
        total = self.spec.train.steps
        self.hooks.report_progress(ProgressReport(step, total, images_per_second, metrics))
        self.hooks.log(
            f"step {step}/{total}  D {metrics['Loss/D/loss']:.4f}  "
            f"G {metrics['Loss/G/loss']:.4f}  {images_per_second:.1f} img/s"
        )

    def samples(self, step: int) -> None:
        """Rank 0 draws G (its average when kept) on the fixed latents, in eval mode, in fp32."""
        if not self.is_main:
            return
        generator = self.nets.ema_module or self.nets.generator
        was_training = generator.training
        generator.eval()
        with torch.no_grad():
            generated = generator(self.fixed_latents.to(self.device))
        generator.train(was_training)
        self.hooks.save_samples(step, render_png(self.spec, generated))

    def evaluate(self, step: int) -> None:
        """Rank 0 scores G (its average when kept) on the run's evaluation latents."""
        if self.evaluation is not None:
            generator = self.nets.ema_module or self.nets.generator
            self.evaluation(step, generator, critic=self.nets.discriminator)

    def checkpoint(self, step: int) -> None:
        """Every rank sends its RNG states to rank 0, which writes the checkpoint."""
        rng_states = gather_to_rank0(capture_rng_state(self.device))
        if not self.is_main or rng_states is None:
            return
        checkpoint = build_checkpoint(
            step=step,
            spec=self.spec,
            generator=self.nets.generator,
            discriminator=self.nets.discriminator,
            g_optimizer=self.nets.g_optimizer,
            d_optimizer=self.nets.d_optimizer,
            fixed_latents=self.fixed_latents,
            rng_states=rng_states,
            generator_ema=self.nets.ema_module,
            grad_scalers=self.nets.scalers,
        )
        self.hooks.save_checkpoint(step, checkpoint_to_bytes(checkpoint))
