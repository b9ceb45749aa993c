"""What the `stylegan2` family accepts (worker/gan/stylegan.py) and the options that came with
it: its image sides, lazy R1 and path-length regularisation, and DiffAugment for any image GAN.
Each check returns a message starting with the field it blames, or None."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from shared.specs.data import DataSpec

# Image sides the stylegan2 family builds: powers of two, 32-256 px.
STYLE_SIDES = (32, 64, 128, 256)
# StyleGAN2's lazy regularisation: R1 every 16 discriminator steps, path length every 4
# generator steps, each weighted by its interval so its expected gradient is unchanged.
STYLEGAN2_R1_EVERY = 16
STYLEGAN2_PL_EVERY = 4
# Most steps between two lazy regularisations: beyond this the regulariser is rarely on at all.
MAX_REG_EVERY = 1000
# DiffAugment's policies (Zhao et al. 2020), applied to every image D sees (worker/gan/augment.py).
AugmentPolicy = Literal["color", "translation", "cutout"]
# Families without a discriminator that sees images: augmentation has nothing to act on.
_NO_IMAGE_CRITIC = ("mlp", "vae")


def stylegan2_data_problem(family: str, data: DataSpec) -> str | None:
    """stylegan2 needs square images of a side it builds, when the spec tells the side."""
    if family != "stylegan2":
        return None
    if data.is_points:
        return f"model stylegan2 needs image data; {data.source} is points"
    shape = data.sample_shape
    if shape is not None and len(shape) == 3 and shape[1] not in STYLE_SIDES:
        sides = ", ".join(str(side) for side in STYLE_SIDES)
        return (
            f"data.resize: model stylegan2 builds square images of side {sides} px; "
            f"{data.source} images here are {shape[1]} px (give data.resize)"
        )
    return None


def family_options_problem(
    family: str, loss: Any, augment: Sequence[str] | None, data: DataSpec
) -> str | None:
    """Path length is stylegan2's; a lazy R1 needs R1 on (stylegan2's is on by default);
    augmentation needs a discriminator of images."""
    if family != "stylegan2":
        for name in ("pl_weight", "pl_every"):
            if getattr(loss, name) is not None:
                return (
                    f"loss.{name}: path-length regularisation is stylegan2's (it needs the "
                    f"mapping network's w), not {family}'s"
                )
        if loss.r1_every is not None and not loss.r1_gamma:
            return "loss.r1_every: R1 is off; give loss.r1_gamma too"
    elif loss.r1_every is not None and loss.r1_gamma == 0:
        return "loss.r1_every: R1 is off (r1_gamma 0)"
    if augment is not None and (family in _NO_IMAGE_CRITIC or data.is_points):
        return (
            "train.augment: DiffAugment transforms images a discriminator sees; "
            f"model {family} on {data.source} has none"
        )
    return None
