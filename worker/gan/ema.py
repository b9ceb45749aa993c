"""An exponential moving average of the generator's weights, drawn instead of G when kept.

Averaging G over its last few thousand steps smooths out the step-to-step wobble of GAN
training, so samples from the average usually look better than from G itself (Karras et al.,
ProGAN and StyleGAN). The average trains nothing: it is updated after each generator step,
saved in checkpoints as `generator_ema` and preferred by sampling when present.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

# Ramp-up constant of the decay: after step s the decay is at most (1 + s) / (10 + s), so
# the first updates follow G closely (0.1 weight for the initial weights after one step).
EMA_RAMP_STEPS = 10


class GeneratorEma:
    """A frozen, eval-mode copy of G whose weights follow G's: ema ← decay·ema + (1 - decay)·G.

    Buffers (batch-norm statistics) are copied, not averaged: they are already running means.
    """

    def __init__(self, generator: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(generator).eval().requires_grad_(False)

    def decay_at(self, step: int | None) -> float:
        """The decay for the update after `step`: ramped up as (1 + step) / (10 + step) early on
        (as TensorFlow's ExponentialMovingAverage does with num_updates), so the average is not
        held back by the random initial weights for thousands of steps; `decay` afterwards."""
        if step is None:
            return self.decay
        return min(self.decay, (1 + step) / (EMA_RAMP_STEPS + step))

    @torch.no_grad()
    def update(self, generator: nn.Module, step: int | None = None) -> None:
        """Move the average one step towards `generator`'s current weights."""
        weight = 1 - self.decay_at(step)
        for averaged, current in zip(self.module.parameters(), generator.parameters(), strict=True):
            averaged.lerp_(current, weight)
        for copied, buffer in zip(self.module.buffers(), generator.buffers(), strict=True):
            copied.copy_(buffer)
