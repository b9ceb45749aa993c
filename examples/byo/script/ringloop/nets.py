"""The loop's networks. The generator follows ganforge's plugin contract (built with
`latent_dim` and `data_shape`, [B, latent_dim] -> [B, *data_shape]) so that
`runtime.save_generator` can hand it to sampling jobs, which rebuild it from its class."""

from __future__ import annotations

from torch import Tensor, nn


def mlp(inputs: int, width: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
        nn.Linear(width, outputs),
    )  # fmt: skip


class Generator(nn.Module):
    def __init__(self, *, latent_dim: int, data_shape: tuple[int, ...], width: int = 64) -> None:
        super().__init__()
        self.net = mlp(latent_dim, width, data_shape[0])

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class Critic(nn.Module):
    def __init__(self, *, width: int = 64) -> None:
        super().__init__()
        self.net = mlp(2, width, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten(0)
