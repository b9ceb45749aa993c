"""StyleGAN2's path-length regularisation, run lazily as its own generator step.

Every `pl_every` G steps (`TrainSpec.pl_interval`), after the step's ordinary G update, G is
updated once more on

    pl_every · pl_weight · mean((‖J_wᵀ y‖₂ - a)²),

J_w the Jacobian of the image with respect to the per-layer w, y a Gaussian image scaled by
1/√(H·W), and a the running mean of the lengths (decay 0.01; the generator's `pl_mean` buffer,
so it travels in checkpoints). As in StyleGAN2 the batch is half the step's (its first latents
and classes), and the image gains 0·image so every parameter that made it takes part in the
backward (DDP insists). The probe y comes from the step's seeded noise stream, so a run
repeats and resumes exactly. It runs in fp32 whatever the precision: it differentiates a
gradient, which bf16 and fp16 round too coarsely.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from shared.specs import TrainSpec
from worker.gan.step import Draw, Networks
from worker.gan.stylegan import style_core

# StyleGAN2's: the running mean of path lengths moves 1% a step; half the batch is probed.
PL_DECAY = 0.01
PL_BATCH_SHRINK = 2


class PathLengthRegulariser:
    """Lazy path-length regularisation of a stylegan2 generator (module docstring)."""

    def __init__(self, weight: float, every: int, device: torch.device) -> None:
        self.weight, self.every = weight, every
        self.last = torch.zeros(1, device=device)  # reported on the steps it skips

    @classmethod
    def of(cls, spec: TrainSpec, device: torch.device) -> PathLengthRegulariser | None:
        """The regulariser `spec` asks for, or None (not stylegan2, or no `loss.pl_weight`)."""
        if spec.model.family != "stylegan2" or not spec.loss.pl_weight:
            return None
        return cls(spec.loss.pl_weight, spec.pl_interval, device)

    def __call__(self, nets: Networks, draw: Draw, step: int, noise: torch.Generator) -> Tensor:
        """Regularise after G step `step` when due; the penalty (before its weight), [1]."""
        if step % self.every:
            return self.last
        core = style_core(nets.generator)
        assert core is not None
        count = max(1, len(draw.z) // PL_BATCH_SHRINK)
        conditions = () if draw.labels is None else (draw.labels[:count],)
        image, ws = nets.g_train(draw.z[:count], *conditions, return_ws=True)
        probe = torch.randn(image.shape, generator=noise).to(image.device)
        probe /= math.sqrt(image.shape[2] * image.shape[3])
        (gradient,) = torch.autograd.grad((image * probe).sum(), ws, create_graph=True)
        lengths = gradient.square().sum(dim=2).mean(dim=1).sqrt()
        mean = core.pl_mean.lerp(lengths.mean().detach(), PL_DECAY)
        core.pl_mean.copy_(mean)
        penalty = (lengths - mean).square().mean()
        total = image[:, 0, 0, 0].mean() * 0 + penalty * (self.weight * self.every)
        nets.g_optimizer.zero_grad(set_to_none=True)
        nets.g_scaler.scale(total).backward()
        nets.g_scaler.step(nets.g_optimizer)
        nets.g_scaler.update()
        self.last = penalty.detach().reshape(1)
        return self.last
