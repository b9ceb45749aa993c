"""The mlp family's generator and discriminator, rewritten as plugin classes.

Layers are made in the built-ins' order, so the same random state gives the same weights.
"""

from __future__ import annotations

from torch import nn

LEAKY_SLOPE = 0.2


class Generator(nn.Sequential):
    """`depth` ReLU layers of `width` units (batch norm after each when asked), then a linear
    map to the data's points."""

    def __init__(
        self,
        *,
        latent_dim: int,
        data_shape: tuple[int, ...],
        width: int = 128,
        depth: int = 3,
        batch_norm: bool = False,
    ) -> None:
        layers: list[nn.Module] = []
        inputs = latent_dim
        for _ in range(depth):
            layers.append(nn.Linear(inputs, width))
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(nn.ReLU())
            inputs = width
        super().__init__(*layers, nn.Linear(width, data_shape[0]))


class Discriminator(nn.Sequential):
    """`depth` LeakyReLU layers of `width` units, then one logit per input."""

    def __init__(self, *, input_shape: tuple[int, ...], width: int = 128, depth: int = 3) -> None:
        layers: list[nn.Module] = [nn.Linear(input_shape[0], width), nn.LeakyReLU(LEAKY_SLOPE)]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.LeakyReLU(LEAKY_SLOPE)]
        super().__init__(*layers, nn.Linear(width, 1), nn.Flatten(0))
