"""The training loop: one function, in numbered sections, that talks out only through hooks.

It runs every model. What differs between them is a `train_common.Trainee`: the GANs' is
`GanTrainee` below (G, D, the critic-then-G step), the VAE baseline's is in `train_vae`.

Determinism: every random draw inside the loop (data, latents, WGAN-GP's mixing weights)
is a function of (job seed, stream, step, critic sub-step, rank) alone, so on the CPU
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
from worker.gan.checkpoint import build_checkpoint, restore_training_state
from worker.gan.data import BatchSource, with_classes
from worker.gan.ema import GeneratorEma
from worker.gan.evaluation import RunEvaluation
from worker.gan.hooks import TrainingHooks
from worker.gan.losses import get_loss, top_k_fraction
from worker.gan.models import build_discriminator, build_generator
from worker.gan.precision import Precision, resolve_precision
from worker.gan.seeding import Stream, generator_for
from worker.gan.step import STAT_NAMES, Networks, Penalty, StepInputs, memory_format_for, train_step
from worker.gan.style_regularisers import PathLengthRegulariser
from worker.gan.stylegan import seeded_noise, style_core
from worker.gan.train_common import (
    RunningStats,
    Snapshots,
    Trainee,
    TrainResult,
    end_of_step,
    fixed_sample_latents,
    open_rank,
    restore_rank_rng,
    wrap_ddp,
)
from worker.gan.train_vae import VaeTrainee

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
    `CheckpointError` for a checkpoint that does not fit `spec`. The sections are the same
    for every model: a GAN (`GanTrainee`) and the VAE baseline (`train_vae.VaeTrainee`) differ
    only in their networks, their step and what their snapshots hold.
    """
    is_main, total = rank == 0, spec.train.steps

    # 1. Load data (a conditional model's number of classes is its labels').
    spec = with_classes(spec, data_path)
    source = open_rank(spec, rank, world_size, device, data_path)

    # 2. Build networks: G and D with their optimisers, or the VAE's encoder and decoder.
    trainee: Trainee = (
        VaeTrainee(spec, source, rank, device)
        if spec.model.family == "vae"
        else GanTrainee(spec, source, rank, device)
    )
    fixed_latents = fixed_sample_latents(spec)

    # 3. Distribute: DDP averages gradients, so every rank keeps identical weights.
    if world_size > 1:
        trainee.distribute()

    # 4. Resume.
    start = 0
    if resume is not None:
        start = trainee.restore(resume)
        fixed_latents = resume["fixed_latents"]
        restore_rank_rng(resume["rng_states"], rank, world_size, device)

    # 5. Train: every random input of a step comes from (job seed, stream, step, rank).
    stats = RunningStats(
        device,
        images_per_step=source.batch_size * world_size * trainee.batches_per_step,
        names=trainee.stat_names,
        checked=trainee.checked,
    )
    evaluation = RunEvaluation(spec, hooks, device, data_path) if is_main else None
    snapshot = Snapshots(spec, hooks, trainee, fixed_latents, device, is_main, evaluation)
    if is_main:
        hooks.log(
            f"{'resuming' if start else 'training'} {spec.model.family} on {spec.data.source}: "
            f"steps {start + 1}-{total}, batch {source.batch_size} x {world_size} rank(s), "
            f"{device}{trainee.setting}"
        )
        if trainee.note:
            hooks.log(trainee.note)
    for step in range(start + 1, total + 1):
        stats.add(step, trainee.step(step))

        # 6. Snapshot. Every rank reaches the same collectives in the same order.
        stopped = end_of_step(step, spec, stats, snapshot, hooks, device, is_main)
        if stopped is not None:
            return stopped
    if is_main:
        hooks.log(f"finished at step {total}")
    return TrainResult(step=max(start, total), stopped_early=False, metrics=snapshot.last_metrics)


class GanTrainee:
    """A GAN's `train_common.Trainee`: G and D with their Adams and loss scalers,
    `critic_steps` D steps then one G step (and stylegan2's lazy path-length step), and the
    average of G following it. stylegan2's training noise comes from (job seed, NOISE stream,
    step, rank)."""

    checked = 3  # D loss, G loss and the penalty

    def __init__(
        self, spec: TrainSpec, source: BatchSource, rank: int, device: torch.device
    ) -> None:
        self.spec = spec
        self.precision, self.note = resolve_precision(spec, device)
        self.nets = _build_networks(spec, device, self.precision)
        self.loss = get_loss(spec.loss.name)
        self.penalty = Penalty.of(spec)
        self.inputs = StepInputs(spec, source, rank, device, penalised=self.loss.penalised)
        self.path_length = PathLengthRegulariser.of(spec, device)
        # stylegan2 draws training noise (and path length its probes) from a seeded stream.
        self.noisy = style_core(self.nets.generator) is not None or self.path_length is not None
        self.stat_names = STAT_NAMES + (() if self.path_length is None else ("Loss/G/reg",))
        self.rank = rank
        self.batches_per_step = spec.loss.critic_steps  # each D step trains on its own batch
        self.setting = f", loss {spec.loss.name}, {self.precision.name}"
        self.device = device

    def distribute(self) -> None:
        """G and D train under DDP wrappers; the average restarts from rank 0's weights."""
        self.nets = _distribute(self.nets, self.device)

    def restore(self, checkpoint: dict[str, Any]) -> int:
        """Load weights, optimiser, average and loss-scaler states; return the step."""
        return restore_training_state(
            checkpoint,
            spec=self.spec,
            generator=self.nets.generator,
            discriminator=self.nets.discriminator,
            g_optimizer=self.nets.g_optimizer,
            d_optimizer=self.nets.d_optimizer,
            generator_ema=self.nets.ema_module,
            grad_scalers=self.nets.scalers,
        )

    def step(self, step: int) -> Tensor:
        """critic_steps discriminator steps, one generator step; the average follows G."""
        set_learning_rate(self.nets, self.spec, step)
        g_fraction = top_k_fraction(self.spec.loss.top_k, step)
        draws = self.inputs.of_step(step)
        if not self.noisy:  # no noise inputs: no stream to seed (a seed costs ~2% of a toy step)
            stats = train_step(
                self.nets, self.loss, self.penalty, self.precision, draws, g_fraction
            )
        else:
            noise = generator_for(self.spec.train.seed, Stream.NOISE, step, self.rank)
            with seeded_noise(self.nets.generator, noise):
                stats = train_step(
                    self.nets, self.loss, self.penalty, self.precision, draws, g_fraction
                )
                if self.path_length is not None:
                    stats = torch.cat([stats, self.path_length(self.nets, draws[-1], step, noise)])
        if self.nets.generator_ema is not None:
            self.nets.generator_ema.update(self.nets.generator, step)
        return stats

    @property
    def sampler(self) -> nn.Module:
        """G's average when kept (smoother samples), else G."""
        return self.nets.ema_module or self.nets.generator

    @property
    def critic(self) -> nn.Module | None:
        """D, whose curve evaluation pictures of 1-D data draw."""
        return self.nets.discriminator

    def summary(self, metrics: dict[str, float]) -> str:
        """D's and G's losses, for the report's log line."""
        return f"D {metrics['Loss/D/loss']:.4f}  G {metrics['Loss/G/loss']:.4f}"

    def checkpoint(
        self, step: int, fixed_latents: Tensor, rng_states: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """The GAN checkpoint layout (`checkpoint`'s module docstring)."""
        return build_checkpoint(
            step=step,
            spec=self.spec,
            generator=self.nets.generator,
            discriminator=self.nets.discriminator,
            g_optimizer=self.nets.g_optimizer,
            d_optimizer=self.nets.d_optimizer,
            fixed_latents=fixed_latents,
            rng_states=rng_states,
            generator_ema=self.nets.ema_module,
            grad_scalers=self.nets.scalers,
        )


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
    """Set both optimisers to `learning_rate(spec, step)`; a constant rate is left as Adam
    was built with it."""
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
