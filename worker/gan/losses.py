"""GAN losses by name (`TrainSpec.loss.name`), as a pair of discriminator and generator terms.

A new loss is two functions and one `LOSSES` entry. WGAN-GP's gradient penalty needs more
than logits (the discriminator and both batches), so it is a separate term,
`gradient_penalty`, which the loop adds with weight `LossSpec.gp_lambda` when the loss says
`penalised`; the loop keeps one shape for every loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class GanLoss:
    """The two halves of a GAN objective, each a mean over the batch.

    `penalised`: the discriminator's loss also takes the gradient penalty.
    """

    discriminator: Callable[[Tensor, Tensor], Tensor]
    generator: Callable[[Tensor], Tensor]
    penalised: bool = False


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """BCE of D(real) against 1 and D(fake) against 0, in softplus form.

    softplus(-x) is BCE-with-logits against 1 and is stable for large |x|.
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: Tensor) -> Tensor:
    """Non-saturating: -log D(G(z)), which still has gradient when D is winning."""
    return F.softplus(-fake_logits).mean()


def least_squares_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """LSGAN (Mao et al. 2017, labels a = 0, b = c = 1): ½(D(x) - 1)² + ½D(G(z))²."""
    return 0.5 * ((real_logits - 1) ** 2).mean() + 0.5 * (fake_logits**2).mean()


def least_squares_generator_loss(fake_logits: Tensor) -> Tensor:
    """LSGAN's generator term: ½(D(G(z)) - 1)²."""
    return 0.5 * ((fake_logits - 1) ** 2).mean()


def hinge_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Hinge (Lim & Ye 2017; SAGAN, BigGAN): max(0, 1 - D(x)) + max(0, 1 + D(G(z)))."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def critic_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Wasserstein critic: D(G(z)) - D(x), to be lowered (WGAN, WGAN-GP without its penalty)."""
    return fake_logits.mean() - real_logits.mean()


def critic_generator_loss(fake_logits: Tensor) -> Tensor:
    """-D(G(z)): the generator term of the Wasserstein and hinge losses."""
    return -fake_logits.mean()


def gradient_penalty(
    discriminator: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    mix: Tensor,
    output_scale: float = 1.0,
    *,
    one_sided: bool = False,
) -> Tensor:
    """WGAN-GP's penalty mean((‖∇x̂ D(x̂)‖₂ - 1)²) at x̂ = mix·real + (1 - mix)·fake, without λ;
    `one_sided`: mean(max(0, ‖∇x̂ D(x̂)‖₂ - 1)²), WGAN-LP's (see `LossSpec.penalty`).

    `mix` holds one weight in [0, 1] per sample. The gradient is taken with
    `create_graph=True`, so a backward pass through the penalty reaches D's weights; pass the
    DDP-wrapped discriminator and those gradients are averaged across ranks like any other.
    `output_scale` is a GradScaler's scale: D's output is scaled before differentiating, so
    fp16 gradients do not underflow, and the gradient unscaled after (PyTorch's AMP recipe).
    """
    weights = mix.view(-1, *([1] * (real.dim() - 1))).to(real.dtype)
    interpolates = (weights * real + (1 - weights) * fake).detach().requires_grad_(True)
    scores = discriminator(interpolates)
    (gradients,) = torch.autograd.grad(scores.sum() * output_scale, interpolates, create_graph=True)
    norms = (gradients.float() / output_scale).flatten(1).norm(dim=1)
    excess = torch.clamp(norms - 1, min=0) if one_sided else norms - 1
    return (excess**2).mean()


def real_gradient_penalty(real: Tensor, real_logits: Tensor, output_scale: float = 1.0) -> Tensor:
    """R1's penalty mean(‖∇x D(x)‖₂²) over the real samples `real` (which must require grad
    and have produced `real_logits`), without gamma/2. Same graph and fp16 handling as
    `gradient_penalty`."""
    (gradients,) = torch.autograd.grad(real_logits.sum() * output_scale, real, create_graph=True)
    return ((gradients.float() / output_scale).flatten(1) ** 2).sum(dim=1).mean()


# Top-k annealing: the kept fraction starts at 1 and shrinks by this factor every
# TOP_K_DECAY_EVERY steps until it reaches `LossSpec.top_k` (the paper's 0.99 per epoch, with
# an "epoch" of 100 steps for data that has none).
TOP_K_DECAY = 0.99
TOP_K_DECAY_EVERY = 100


def top_k_fraction(top_k: float | None, step: int) -> float:
    """The fraction of fakes that train G at `step` (1-based): 1 without top-k."""
    if top_k is None:
        return 1.0
    return max(top_k, TOP_K_DECAY ** (step // TOP_K_DECAY_EVERY))


def best_scored(fake_logits: Tensor, fraction: float) -> Tensor:
    """The `fraction` of logits the discriminator rates most real (at least one)."""
    if fraction >= 1:
        return fake_logits
    keep = max(1, math.ceil(fraction * fake_logits.shape[0]))
    return fake_logits.topk(keep).values


LOSSES: dict[str, GanLoss] = {
    "non_saturating": GanLoss(discriminator=discriminator_loss, generator=generator_loss),
    "least_squares": GanLoss(
        discriminator=least_squares_discriminator_loss, generator=least_squares_generator_loss
    ),
    "hinge": GanLoss(discriminator=hinge_discriminator_loss, generator=critic_generator_loss),
    "wgan_gp": GanLoss(discriminator=critic_loss, generator=critic_generator_loss, penalised=True),
}


def get_loss(name: str) -> GanLoss:
    """The loss registered under `name` (a `LossSpec.name` value)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; known: {', '.join(sorted(LOSSES))}")
    return LOSSES[name]
