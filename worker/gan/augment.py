"""Differentiable augmentation of what the discriminator sees (`train.augment`).

DiffAugment (Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training",
2020): every image D judges, real or fake, in D's step and in G's, is transformed by the
same family of differentiable augmentations, so D cannot memorise a small training set and
G still gets gradients through them (the transforms are differentiable in the image, and
they hit real and fake alike, so they do not leak into G's samples). Policies, as in the
paper's reference code (mit-han-lab/data-efficient-gans, DiffAugment_pytorch.py):

- `color`: brightness ±0.5, saturation x[0, 2], contrast x[0.5, 1.5], per image;
- `translation`: shift by up to 1/8 of the side, per image, zero-filled;
- `cutout`: zero a square of half the side at a random place, per image.

Why DiffAugment and not ADA (Karras et al. 2020): DiffAugment is stateless. ADA tunes its
augmentation probability p from an overfitting heuristic measured on D's outputs over the run,
which is state that every rank must agree on and every checkpoint must carry for a bit-exact
resume, and its pipeline (18 transforms, filtered geometric ones) is several times the code.
Here each augmentation's random draws come from a fresh generator seeded by (job seed,
stream, draw, use, rank) (`worker/gan/seeding.py`), so a run repeats exactly and resumes from
its step number alone; the paper reports DiffAugment on par with ADA on CIFAR-10 and
low-shot sets at these sizes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from worker.gan.seeding import Stream, generator_for

# The paper's strengths: translation by 1/8 of the side, a cutout of half of it.
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


class Use:
    """Which image batch of a draw is augmented: each gets its own random stream."""

    REAL = 0
    FAKE_D = 1  # the fakes of the discriminator's step
    FAKE_G = 2  # the fakes of the generator's step
    MIX = 3  # WGAN-GP's real/fake mixes


def _uniform(count: int, generator: torch.Generator, like: Tensor) -> Tensor:
    return torch.rand(count, 1, 1, 1, generator=generator).to(like.device, like.dtype)


def brightness_saturation_contrast(x: Tensor, generator: torch.Generator) -> Tensor:
    """The paper's `color`: brightness, then saturation, then contrast, each per image."""
    count = x.shape[0]
    x = x + (_uniform(count, generator, x) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(count, generator, x) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(count, generator, x) + 0.5) + mean


def translation(x: Tensor, generator: torch.Generator, ratio: float = TRANSLATION_RATIO) -> Tensor:
    """Each image shifted by up to `ratio` of its side in each direction, zero-filled."""
    count, _, height, width = x.shape
    reach_y, reach_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    shift_y = torch.randint(-reach_y, reach_y + 1, (count, 1, 1), generator=generator)
    shift_x = torch.randint(-reach_x, reach_x + 1, (count, 1, 1), generator=generator)
    batch, rows, columns = torch.meshgrid(
        torch.arange(count), torch.arange(height), torch.arange(width), indexing="ij"
    )
    rows = torch.clamp(rows + shift_y + 1, 0, height + 1).to(x.device)
    columns = torch.clamp(columns + shift_x + 1, 0, width + 1).to(x.device)
    padded = F.pad(x, [1, 1, 1, 1])
    return padded.permute(0, 2, 3, 1)[batch.to(x.device), rows, columns].permute(0, 3, 1, 2)


def cutout(x: Tensor, generator: torch.Generator, ratio: float = CUTOUT_RATIO) -> Tensor:
    """Each image with a square of `ratio` of its side zeroed, centred anywhere in it."""
    count, _, height, width = x.shape
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    offset_y = torch.randint(0, height + (1 - size_y % 2), (count, 1, 1), generator=generator)
    offset_x = torch.randint(0, width + (1 - size_x % 2), (count, 1, 1), generator=generator)
    batch, rows, columns = torch.meshgrid(
        torch.arange(count), torch.arange(size_y), torch.arange(size_x), indexing="ij"
    )
    rows = torch.clamp(rows + offset_y - size_y // 2, 0, height - 1)
    columns = torch.clamp(columns + offset_x - size_x // 2, 0, width - 1)
    mask = torch.ones(count, height, width)
    mask[batch, rows, columns] = 0
    return x * mask.unsqueeze(1).to(x.device, x.dtype)


POLICIES: dict[str, Callable[[Tensor, torch.Generator], Tensor]] = {
    "color": brightness_saturation_contrast,
    "translation": translation,
    "cutout": cutout,
}


def diff_augment(x: Tensor, policies: Sequence[str], generator: torch.Generator) -> Tensor:
    """`x` [B, C, H, W] through `policies` in the paper's order (color, translation, cutout),
    every random draw from `generator` (a CPU generator)."""
    for name in POLICIES:
        if name in policies:
            x = POLICIES[name](x, generator)
    return x


class Augmenter:
    """The augmentation of one run on one rank: `(images, draw, use)` -> augmented images,
    drawn from (job seed, AUGMENT stream, draw, use, rank) alone."""

    def __init__(self, policies: Sequence[str], seed: int, rank: int) -> None:
        self.policies, self.seed, self.rank = tuple(policies), seed, rank

    def __call__(self, images: Tensor, draw: int, use: int) -> Tensor:
        generator = generator_for(self.seed, Stream.AUGMENT, draw, use, self.rank)
        return diff_augment(images, self.policies, generator)
