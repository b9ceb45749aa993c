"""The VAE baseline: an encoder, a decoder and the ELBO they are trained on.

Networks are the GANs' own, so the baseline differs from them in its objective only: the
decoder is the generator of the data kind (dcgan for images, mlp for points) and the encoder
is that kind's discriminator with its one-logit head swapped for the 2·dim statistics of
q(z | x) = N(mean, diag(exp(log_var))). The prior p(z) is N(0, I).

Likelihood: p(x | z) = N(decoder(z), sigma² I) with a fixed sigma per data kind (`DECODER_STD`).
Gaussian rather than Bernoulli because it fits both points and images in [-1, 1] with one
code path, and the decoder keeps the generator's output range (tanh for images). sigma sets the
balance of reconstruction and KL, so it is fixed per data kind rather than learnt: a sigma set
to each batch's mean squared error (sigma-VAE) collapsed the posterior on ring8 (KL → 0, every
sample at the origin), as is usual when sigma starts as large as the data's spread. All terms are
nats per sample, summed over coordinates and latent dimensions and averaged over the batch;
with continuous data and a small sigma the ELBO can be positive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from shared.specs import TrainSpec
from worker.gan.models import build_discriminator, build_generator

# The likelihood's sigma, by data kind. Points: 5x ring8's 0.01 mode std, well under the 0.77
# between neighbouring modes; at 0.05 a 2,000-step run covered all 8 modes. Images ([-1, 1]):
# of 0.1 and 0.3 tried on MNIST, 0.3 gave the cleaner prior samples after 800 steps, and 0.1
# (closer to pixel noise) let the KL grow with no visible gain.
DECODER_STD = {"points": 0.05, "images": 0.3}
# Encoder log-variances are clamped to this range: exp(±20) stays finite in float32 and
# leaves every useful posterior width (sigma from 5e-5 to 2e4) reachable.
LOG_VARIANCE_RANGE = (-20.0, 20.0)


class Vae(nn.Module):
    """Encoder and decoder as one module, so one optimiser and one DDP wrapper cover both."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, decoder_std: float):
        super().__init__()
        self.encoder, self.decoder, self.decoder_std = encoder, decoder, decoder_std

    def forward(self, x: Tensor, noise: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(reconstruction, mean, log_var) of x, with z = mean + sigma·noise (reparameterised)."""
        mean, log_var = self.encoder(x).chunk(2, dim=1)
        log_var = log_var.clamp(*LOG_VARIANCE_RANGE)
        z = mean + torch.exp(0.5 * log_var) * noise
        return self.decoder(z), mean, log_var


@dataclass(frozen=True)
class ElboTerms:
    """The ELBO's parts, nats per sample; `loss` (= -ELBO) is what the optimiser minimises."""

    recon: Tensor  # E_q[-log p(x | z)], one-sample estimate
    kl: Tensor  # KL(q(z | x) || N(0, I)), in closed form

    @property
    def loss(self) -> Tensor:
        return self.recon + self.kl

    @property
    def elbo(self) -> Tensor:
        return -self.loss


def build_encoder(spec: TrainSpec) -> nn.Module:
    """x -> [B, 2·dim]: the means, then the log-variances, of q(z | x)."""
    # A discriminator ends in (one-logit layer, Flatten(0)); the trunk before them is kept.
    *trunk, head, _flatten = build_discriminator(spec).children()
    outputs = 2 * spec.latent.dim
    if isinstance(head, nn.Conv2d):
        kernel = (head.kernel_size[0], head.kernel_size[1])
        new_head: list[nn.Module] = [nn.Conv2d(head.in_channels, outputs, kernel), nn.Flatten(1)]
    elif isinstance(head, nn.Linear):
        new_head = [nn.Linear(head.in_features, outputs)]
    else:
        raise TypeError(f"cannot put an encoder head on a discriminator ending in {head}")
    return nn.Sequential(*trunk, *new_head)


def build_vae(spec: TrainSpec) -> Vae:
    """The encoder and decoder for a `vae` spec; the decoder is `build_generator(spec)`."""
    std = DECODER_STD["images" if spec.data.is_image else "points"]
    return Vae(build_encoder(spec), build_generator(spec), std)


def elbo_terms(
    x: Tensor, reconstruction: Tensor, mean: Tensor, log_var: Tensor, decoder_std: float
) -> ElboTerms:
    """The ELBO's terms for one batch, under p(x | z) = N(reconstruction, decoder_std² I)."""
    squared_error = (x - reconstruction).pow(2).flatten(1)
    variance = decoder_std**2
    coordinates = squared_error.shape[1]
    recon = 0.5 * (squared_error.sum(1) / variance + coordinates * math.log(2 * math.pi * variance))
    kl = 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).sum(1)
    return ElboTerms(recon=recon.mean(), kl=kl.mean())
