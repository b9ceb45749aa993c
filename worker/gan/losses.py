"""GAN losses by name (`TrainSpec.loss`), as a pair of discriminator and generator terms.

A new loss (hinge, least squares) is two functions and one `LOSSES` entry. One that needs
more than logits (WGAN-GP's gradient penalty needs the discriminator and both batches) adds
its extra term as a regulariser beside these, so the loop keeps one shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class GanLoss:
    """The two halves of a GAN objective, each a mean over the batch."""

    discriminator: Callable[[Tensor, Tensor], Tensor]
    generator: Callable[[Tensor], Tensor]


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """BCE of D(real) against 1 and D(fake) against 0, in softplus form.

    softplus(-x) is BCE-with-logits against 1 and is stable for large |x|.
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: Tensor) -> Tensor:
    """Non-saturating: -log D(G(z)), which still has gradient when D is winning."""
    return F.softplus(-fake_logits).mean()


LOSSES: dict[str, GanLoss] = {
    "non_saturating": GanLoss(discriminator=discriminator_loss, generator=generator_loss),
}


def get_loss(name: str) -> GanLoss:
    """The loss registered under `name` (a `TrainSpec.loss` value)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; known: {', '.join(sorted(LOSSES))}")
    return LOSSES[name]
