"""A residual MLP generator and a spectrally normalised MLP critic for points in the plane.

Both follow ganforge's plugin contract (worker/gan/plugins.py): the generator is built with
`latent_dim` and `data_shape` and maps [B, latent_dim] to [B, *data_shape]; the critic is
built with `input_shape` (the data's shape, its features multiplied by the spec's `pack`)
and gives one score per input, [B]. Everything else comes from the spec's `generator_args`
and `discriminator_args`.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from .blocks import ResidualBlock


class ResidualGenerator(nn.Module):
    """latent -> width units -> `blocks` residual blocks -> the data's coordinates."""

    def __init__(
        self, *, latent_dim: int, data_shape: tuple[int, ...], width: int = 128, blocks: int = 2
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Linear(latent_dim, width), nn.ReLU())
        self.blocks = nn.Sequential(*(ResidualBlock(width) for _ in range(blocks)))
        self.head = nn.Linear(width, data_shape[0])

    def forward(self, z: Tensor) -> Tensor:
        return self.head(self.blocks(self.stem(z)))


class SpectralCritic(nn.Module):
    """An MLP whose every layer has spectral norm 1 (Miyato et al. 2018), so the critic is
    1-Lipschitz and its scores do not run away: stable with any of ganforge's losses."""

    def __init__(self, *, input_shape: tuple[int, ...], width: int = 128, depth: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        inputs = input_shape[0]
        for _ in range(depth):
            layers += [spectral_norm(nn.Linear(inputs, width)), nn.LeakyReLU(0.2)]
            inputs = width
        layers.append(spectral_norm(nn.Linear(width, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten(0)  # one score per input: [B, 1] -> [B]
