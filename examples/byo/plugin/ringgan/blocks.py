"""The residual block the generator stacks, in a module of its own to show that a bundle
imports its own modules relatively (`from .blocks import ResidualBlock`)."""

from __future__ import annotations

from torch import Tensor, nn


class ResidualBlock(nn.Module):
    """x + f(x), f two linear layers with a ReLU between: deep MLPs train as well as shallow
    ones, since each block starts close to the identity."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
        nn.init.zeros_(self.body[2].weight)  # start as the identity
        nn.init.zeros_(self.body[2].bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)
