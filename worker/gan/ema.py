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


class GeneratorEma:
    """A frozen, eval-mode copy of G whose weights follow G's: ema ← decay·ema + (1 - decay)·G.

    Buffers (batch-norm statistics) are copied, not averaged: they are already running means.
    """

    def __init__(self, generator: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(generator).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, generator: nn.Module) -> None:
        """Move the average one step towards `generator`'s current weights."""
        for averaged, current in zip(self.module.parameters(), generator.parameters(), strict=True):
            averaged.lerp_(current, 1 - self.decay)
        for copied, buffer in zip(self.module.buffers(), generator.buffers(), strict=True):
            copied.copy_(buffer)
