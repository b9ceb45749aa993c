"""One training step: discriminator updates, one per draw, then a generator update.

`StepInputs` makes every random input of a step from (job seed, stream, draw, rank) alone;
`train_step` runs the step under the run's precision and returns its statistics on the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from shared.specs import TrainSpec
from worker.gan.augment import Augmenter, Use
from worker.gan.data import BatchSource, known_shape
from worker.gan.ema import GeneratorEma
from worker.gan.losses import GanLoss, best_scored, gradient_penalty, real_gradient_penalty
from worker.gan.precision import Precision
from worker.gan.priors import sample_latents
from worker.gan.seeding import Stream
from worker.gan.stream_blocks import BlockStream

# Per-step statistics, in the order `train_step` returns them. Loss/D/loss is the loss
# proper, without the regulariser (WGAN-GP's gradient penalty before λ, or R1's before gamma/2)
# in Loss/D/reg (0 on the D steps a lazy R1 skips).
STAT_NAMES = (
    "Loss/D/loss",
    "Loss/G/loss",
    "Loss/D/reg",
    "Loss/scores/real",
    "Loss/scores/fake",
)


@dataclass(frozen=True)
class Networks:
    """Both networks of a run, what trains them, and the average of G."""

    generator: nn.Module  # the networks themselves: checkpoints and samples use these
    discriminator: nn.Module
    g_train: nn.Module  # what the training step calls: DDP wrappers when distributed
    d_train: nn.Module
    g_optimizer: torch.optim.Optimizer
    d_optimizer: torch.optim.Optimizer
    g_scaler: torch.amp.GradScaler  # fp16 loss scaling; pass-throughs at other precisions
    d_scaler: torch.amp.GradScaler
    generator_ema: GeneratorEma | None  # None unless `train.ema_decay` is set

    @property
    def scalers(self) -> dict[str, torch.amp.GradScaler]:
        return {"g": self.g_scaler, "d": self.d_scaler}

    @property
    def ema_module(self) -> nn.Module | None:
        return None if self.generator_ema is None else self.generator_ema.module


@dataclass(frozen=True)
class Draw:
    """What one discriminator step trains on."""

    real: Tensor
    z: Tensor
    mix: Tensor | None  # WGAN-GP's real/fake mixing weight per sample; None for other losses
    # A conditional model's classes of the real batch, which its fakes are asked for too (so
    # G draws classes as often as the data holds them); None for an unconditional one.
    labels: Tensor | None = None
    # Which D step this is, numbered from 1 over the run (lazy R1 and augmentation use it).
    index: int = 1
    # DiffAugment for every image D sees (`train.augment`); None: none.
    augment: Augmenter | None = None

    def seen(self, images: Tensor, use: int) -> Tensor:
        """`images` as D sees them: augmented for `use` when the run augments."""
        return images if self.augment is None else self.augment(images, self.index, use)


@dataclass(frozen=True)
class Penalty:
    """D's gradient penalties: WGAN-GP's weight λ (0: none) and whether it is one-sided, and
    R1's gamma on real samples (0: none), applied every `r1_every` D steps (lazy R1)."""

    weight: float = 0.0
    one_sided: bool = False
    r1_gamma: float = 0.0
    r1_every: int = 1

    @classmethod
    def of(cls, spec: TrainSpec) -> Penalty:
        return cls(
            spec.loss.gp_lambda or 0.0,
            spec.loss.penalty == "one_sided",
            r1_gamma_of(spec),
            spec.r1_interval,
        )

    def r1_due(self, draw: Draw) -> bool:
        """Whether R1 applies on this D step: on, and the step a multiple of `r1_every`."""
        return self.r1_gamma > 0 and draw.index % self.r1_every == 0


# StyleGAN2-ADA's heuristic R1 weight ("auto" config): gamma = 0.0002 · side² / batch.
STYLEGAN2_R1_PER_PIXEL = 0.0002


def r1_gamma_of(spec: TrainSpec) -> float:
    """R1's gamma: `loss.r1_gamma`; for a stylegan2 that leaves it out, StyleGAN2-ADA's
    heuristic 0.0002 · side² / batch (0.0032 at 32 px and batch 64); else 0 (off)."""
    if spec.loss.r1_gamma is not None or spec.model.family != "stylegan2":
        return spec.loss.r1_gamma or 0.0
    side = known_shape(spec.data)[-1]
    return STYLEGAN2_R1_PER_PIXEL * side * side / spec.train.batch_size


def train_step(
    nets: Networks,
    loss: GanLoss,
    penalty: Penalty,
    precision: Precision,
    draws: list[Draw],
    g_fraction: float = 1.0,
) -> Tensor:
    """A discriminator step per draw, then a generator step on the last draw's fakes (only
    the `g_fraction` D rates best: top-k training).

    Returns the `STAT_NAMES` values of the last D step and the G step, on the device.
    """
    for index, draw in enumerate(draws):
        # Only the last draw's fakes train G; the others need no graph.
        with torch.set_grad_enabled(index == len(draws) - 1), precision.autocast():
            fake = nets.g_train(draw.z, *_conditions(draw))
        d_stats = _discriminator_step(nets, loss, penalty, precision, draw, fake.detach())

    # D's gradients from this backward are discarded by the next D step's zero_grad.
    with precision.autocast():
        judged = nets.d_train(draw.seen(fake, Use.FAKE_G), *_conditions(draw))
        g_loss = loss.generator(best_scored(judged.float(), g_fraction))
    nets.g_optimizer.zero_grad(set_to_none=True)
    nets.g_scaler.scale(g_loss).backward()
    nets.g_scaler.step(nets.g_optimizer)
    nets.g_scaler.update()
    d_loss, d_penalty, real_score, fake_score = d_stats
    # One stack, outside autograd, for the step's statistics: on a small MLP every tiny
    # device op shows.
    with torch.no_grad():
        return torch.stack([d_loss, g_loss, d_penalty, real_score, fake_score])


def _discriminator_step(
    nets: Networks,
    loss: GanLoss,
    gp: Penalty,
    precision: Precision,
    draw: Draw,
    fake: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One D update; returns (loss, penalty, mean real score, mean fake score), not
    detached: the caller reads them outside autograd."""
    r1 = gp.r1_due(draw)
    real = draw.real.detach().requires_grad_(True) if r1 else draw.real
    judge = nets.d_train if draw.labels is None else partial(nets.d_train, labels=draw.labels)

    def critic(images: Tensor, use: int = Use.MIX) -> Tensor:
        return judge(draw.seen(images, use))  # type: ignore[no-any-return]

    scale = nets.d_scaler.get_scale() if nets.d_scaler.is_enabled() else 1.0
    with precision.autocast():
        # Losses in fp32 whatever the precision: logits are cheap, and softplus and squares
        # of fp16 values overflow.
        real_logits = critic(real, Use.REAL).float()
        fake_logits = critic(fake, Use.FAKE_D).float()
        d_loss = loss.discriminator(real_logits, fake_logits)
        penalty = torch.zeros((), device=d_loss.device)
        total = d_loss
        if draw.mix is not None:
            penalty = gradient_penalty(
                critic, draw.real, fake, draw.mix, scale, one_sided=gp.one_sided
            )
            total = d_loss + gp.weight * penalty
        elif r1:
            # Lazy R1 weighs each penalty by its interval, so its expected gradient is the
            # every-step penalty's (with r1_every 1 this is gamma / 2 exactly).
            penalty = real_gradient_penalty(real, real_logits, scale)
            total = d_loss + gp.r1_gamma * gp.r1_every / 2 * penalty
    nets.d_optimizer.zero_grad(set_to_none=True)
    nets.d_scaler.scale(total).backward()
    nets.d_scaler.step(nets.d_optimizer)
    nets.d_scaler.update()
    if nets.d_scaler.is_enabled():
        # fp16: the penalty comes from loss-scaled gradients, which overflow now and then by
        # design; the scaler has just skipped such a step. Its penalty counts as 0, so only a
        # non-finite loss proper stops the run.
        penalty = torch.nan_to_num(penalty.detach(), nan=0.0, posinf=0.0, neginf=0.0)
    return d_loss, penalty, real_logits.mean(), fake_logits.mean()


def _conditions(draw: Draw) -> tuple[Tensor, ...]:
    """The networks' arguments after their input: the class labels, for a conditional model."""
    return () if draw.labels is None else (draw.labels,)


class StepInputs:
    """The draws of every step, computed from (job seed, stream, draw, rank) alone; latents
    and mixes are drawn many draws at a time (`stream_blocks.BlockStream`).

    Draw d = (step - 1)·critic_steps + k + 1 numbers the discriminator steps from 1, so each
    critic sub-step k of a step gets its own real batch, latents and penalty mix, and a data
    source walks its epochs one D step at a time. With one critic step d is the step itself.
    """

    def __init__(
        self,
        spec: TrainSpec,
        source: BatchSource,
        rank: int,
        device: torch.device,
        penalised: bool,
    ):
        self.spec, self.source, self.rank, self.device = spec, source, rank, device
        self.penalised = penalised
        self.memory_format = memory_format_for(spec, device)
        policies = spec.train.augment
        self.augment = None if not policies else Augmenter(policies, spec.train.seed, rank)
        seed, rows = spec.train.seed, source.batch_size
        self._latents = BlockStream(
            partial(sample_latents, spec.latent), rows, seed, Stream.LATENTS, rank
        )
        self._mixes = BlockStream(_uniform_weights, rows, seed, Stream.PENALTY_MIX, rank)

    def of_step(self, step: int) -> list[Draw]:
        critic_steps = self.spec.loss.critic_steps
        return [self._draw((step - 1) * critic_steps + k + 1) for k in range(critic_steps)]

    def _draw(self, draw: int) -> Draw:
        real = self.source.batch(draw).to(self.device, memory_format=self.memory_format)
        z = self._latents.rows(draw).to(self.device)
        mix = self._mixes.rows(draw).to(self.device) if self.penalised else None
        labels = None
        if self.spec.model.conditional:
            labels = self.source.batch_labels(draw).to(self.device)  # type: ignore[attr-defined]
        return Draw(real=real, z=z, mix=mix, labels=labels, index=draw, augment=self.augment)


def _uniform_weights(count: int, generator: torch.Generator) -> Tensor:
    """`count` weights uniform in [0, 1): WGAN-GP's real/fake mix, one per sample."""
    return torch.rand(count, generator=generator)


def memory_format_for(spec: TrainSpec, device: torch.device) -> torch.memory_format:
    """channels_last for the convolutional families on CUDA, where cuDNN's NHWC convolutions
    (tensor cores under autocast) are faster; the default layout everywhere else."""
    if spec.model.family in ("dcgan", "stylegan2") and device.type == "cuda":
        return torch.channels_last
    return torch.preserve_format
