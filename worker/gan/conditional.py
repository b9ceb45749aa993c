"""Class-conditional networks (`model.conditional`): G(z, y) sees a learnt embedding of its
class beside z, and D(x, y) is a projection discriminator (Miyato & Koyama 2018),

    D(x, y) = psi(phi(x)) + <embed(y), phi(x)>,

phi the unconditional discriminator's trunk, psi its last layer. Both wrap the family's own
unconditional networks, which stay as they were (old checkpoints keep their keys).

Either network called without labels draws classes in turn (`balanced_labels`): every path that
asks G for samples without naming classes (snapshot grids, path length, export) gets each class
equally often, and D without labels is its unconditional part psi(phi(x)).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

# Width of G's class embedding, concatenated to z: as wide as MNIST's one-hot code and then
# some, so classes need not share directions; small beside the latents (64-128) it joins.
CLASS_EMBEDDING_DIM = 32


def balanced_labels(count: int, classes: int, device: torch.device | None = None) -> Tensor:
    """Classes in turn, 0, 1, ..., classes - 1, 0, ...: `count` labels, each class equally
    often (to within one)."""
    return torch.arange(count, device=device) % classes


def proportional_labels(shares: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """`count` labels with each class as often as `shares` [K] (summing to 1) says, to within
    one (largest remainders), in an order shuffled by `generator`: an evaluation asks for the
    classes in the data's proportions, so its class histogram can match the data's."""
    exact = shares.double() * count
    counts = exact.floor().long()
    short = count - int(counts.sum())
    counts[(exact - counts).argsort(descending=True)[:short]] += 1
    labels = torch.repeat_interleave(torch.arange(len(shares)), counts)
    return labels[torch.randperm(count, generator=generator)]


class ConditionalGenerator(nn.Module):
    """G(z, y) = network([z, embed(y)]): `network` takes latent dim + CLASS_EMBEDDING_DIM.

    `labels` are class ids [B] (int64), or class weights [B, classes] (float, rows summing
    to 1) whose code is the weighted mix of the class embeddings: an interpolation between
    classes. A one-hot row gives its class's embedding exactly (the other terms are exact
    zeros), so it draws what the class id draws.
    """

    def __init__(self, network: nn.Module, classes: int) -> None:
        super().__init__()
        self.classes = classes
        self.embed = nn.Embedding(classes, CLASS_EMBEDDING_DIM)
        self.network = network

    def forward(self, z: Tensor, labels: Tensor | None = None, **options: Any) -> Any:
        """`options` go to the network (stylegan2's `psi`, `return_ws`)."""
        return self.network(self.network_input(z, labels), **options)

    def network_input(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """[z, embed(y)], what the wrapped network takes (classes in turn without labels)."""
        if labels is None:
            labels = balanced_labels(len(z), self.classes, z.device)
        if labels.is_floating_point():
            code = (labels.to(self.embed.weight.dtype) @ self.embed.weight).to(z.dtype)
        else:
            code = self.embed(labels).to(z.dtype)
        return torch.cat([z, code], dim=1)


class ProjectionDiscriminator(nn.Module):
    """D(x, y) = head(trunk(x)) + <embed(y), flatten(trunk(x))>: `head` is psi, the
    unconditional network's last layer(s) giving one logit per sample; `features` the size
    of phi(x) flattened."""

    def __init__(self, trunk: nn.Module, head: nn.Module, features: int, classes: int) -> None:
        super().__init__()
        self.trunk, self.head = trunk, head
        self.embed = nn.Embedding(classes, features)
        # Zero: the model starts as the unconditional discriminator and learns what each class
        # adds (a random projection would add noise of the features' norm to every logit).
        nn.init.zeros_(self.embed.weight)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        features = self.trunk(x)
        logits: Tensor = self.head(features)
        if labels is None:
            return logits
        projection = (self.embed(labels) * features.flatten(1)).sum(dim=1)
        return logits + projection.to(logits.dtype)
