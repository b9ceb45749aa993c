"""Perceptual path length: known answers on generators whose paths are understood."""

from __future__ import annotations

import torch
from torch import nn

from shared.specs import LatentSpec
from worker.gan.path_length import path_length

LATENT = LatentSpec(dim=4)
CPU = torch.device("cpu")


class Scaled(nn.Module):
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2, bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]))
        self.scale = scale

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.scale * self.linear(z)


def _ppl(generator: nn.Module, features: nn.Module | None = None) -> float:
    return path_length(generator, LATENT, CPU, pairs=400, features=features, seed=1)


def test_path_length_grows_with_the_square_of_the_generators_scale() -> None:
    one, three = _ppl(Scaled(1.0)), _ppl(Scaled(3.0))
    assert one > 0
    assert abs(three / one - 9.0) < 1e-6


def test_a_constant_generator_has_zero_path_length_and_a_sharp_one_a_large_one() -> None:
    constant = nn.Sequential(nn.Linear(4, 2))
    with torch.no_grad():
        constant[0].weight.zero_()
    assert _ppl(constant) == 0.0
    # A generator that folds the plane (sin of a large multiple) changes fast along paths.
    sharp = nn.Sequential(Scaled(25.0), _Sine())
    assert _ppl(sharp) > 50 * _ppl(Scaled(1.0))


class _Sine(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x)


def test_path_length_is_repeatable_and_measured_in_the_given_feature_space() -> None:
    assert _ppl(Scaled(1.0)) == _ppl(Scaled(1.0))
    doubling = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        doubling.weight.copy_(2 * torch.eye(2))
    assert abs(_ppl(Scaled(1.0), features=doubling) / _ppl(Scaled(1.0)) - 4.0) < 1e-6


def test_256px_images_go_through_in_batches_and_measure_what_one_batch_would() -> None:
    """A generator of 256 px images (a tiny transposed convolution) and a conditional one:
    batched by pixels, pairs stay whole and keep their class, so the figure is one batch's."""
    seen: list[int] = []

    class Images(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.up = nn.ConvTranspose2d(4, 1, 256, bias=False)

        def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
            seen.append(len(z))
            shift = 0.0 if labels is None else labels[:, None, None, None].to(z.dtype)
            return torch.tanh(self.up(z[:, :, None, None]) + shift)

    torch.manual_seed(0)
    generator = Images()
    batched = path_length(generator, LATENT, CPU, pairs=61, seed=1, classes=3, image_side=256)
    assert seen == [24] * 5 + [2]  # 12 pairs of 256 px a batch, pairs never split
    whole = path_length(generator, LATENT, CPU, pairs=61, seed=1, classes=3)
    assert seen[6:] == [122] and abs(batched / whole - 1) < 1e-9
