"""Latent tools in stylegan2's W space: map z to w, truncate towards the tracked mean w, draw
from w; and the one call every sampling path makes to draw latents with truncation, which is
z-truncation (ψ·z) for the other families and W-truncation for stylegan2.

W-truncation (StyleGAN): w ↦ w_avg + ψ·(w - w_avg), w_avg the mean of w tracked over training
(`StyleGenerator.w_avg`, in every checkpoint). W is where StyleGAN's images vary most evenly,
so a ψ < 1 there trades variety for fidelity more gracefully than shrinking z, and it pulls
towards the average image rather than towards whatever G makes of z = 0.
"""

from __future__ import annotations

from torch import Tensor, nn

from worker.gan.conditional import ConditionalGenerator
from worker.gan.errors import LatentsError
from worker.gan.stylegan import StyleGenerator, style_core


def is_style(generator: nn.Module) -> bool:
    """Whether `generator` is a stylegan2's (W-space tools apply)."""
    return style_core(generator) is not None


def _core(generator: nn.Module) -> StyleGenerator:
    core = style_core(generator)
    if core is None:
        raise LatentsError("W space is stylegan2's (its mapping network's w); this is not one")
    return core


def to_w(generator: nn.Module, z: Tensor, labels: Tensor | None = None) -> Tensor:
    """w [n, w_dim] of latents z [n, dim] (of `labels`' classes for a conditional model)."""
    core = _core(generator)
    if isinstance(generator, ConditionalGenerator):
        z = generator.network_input(z, labels)
    return core.to_w(z)


def truncate_w(generator: nn.Module, w: Tensor, psi: float | None) -> Tensor:
    """w moved towards the tracked mean: w_avg + ψ·(w - w_avg); ψ None or 1 returns w."""
    if psi is None or psi == 1:
        return w
    return _core(generator).w_avg.to(w.dtype).lerp(w, psi)


def from_w(generator: nn.Module, w: Tensor, psi: float | None = None) -> Tensor:
    """Images of w [n, w_dim], truncated by ψ first when given."""
    return _core(generator).synthesis(truncate_w(generator, w, psi))


def mean_w(generator: nn.Module) -> Tensor:
    """The tracked mean w [w_dim] (a copy)."""
    return _core(generator).w_avg.detach().clone()


def draw_truncated(
    generator: nn.Module, z: Tensor, labels: Tensor | None = None, psi: float | None = None
) -> Tensor:
    """G's images of z with truncation ψ: in W for stylegan2, ψ·z for the others."""
    conditions = () if labels is None else (labels,)
    if is_style(generator):
        return generator(z, *conditions, psi=1.0 if psi is None else psi)  # type: ignore[no-any-return]
    scaled = z if psi is None or psi == 1 else z * psi
    return generator(scaled, *conditions)  # type: ignore[no-any-return]
