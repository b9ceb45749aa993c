"""The VAE baseline's part of the training loop: `train.train`'s sections and hooks, with an
ELBO step.

`train.train` builds a `VaeTrainee` for `vae` specs. Data, seeding, the distributed
collectives, the stop and report schedule, checkpoints that resume bitwise and sample grids of
the decoder on the fixed latents all work as for the GANs, being the same code; the
reparameterisation noise of each step comes from the LATENTS stream of (job seed, step, rank),
as GAN latents do.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from shared.specs import TrainSpec
from worker.gan.data import BatchSource
from worker.gan.priors import sample_latents
from worker.gan.seeding import Stream, generator_for
from worker.gan.train_common import wrap_ddp
from worker.gan.vae import build_vae, elbo_terms
from worker.gan.vae_checkpoint import build_vae_checkpoint, restore_vae_state

# Per-step statistics, in the order `_vae_step` returns them; all three are checked for NaN.
VAE_STAT_NAMES = ("Loss/VAE/elbo", "Loss/VAE/recon", "Loss/VAE/kl")


class VaeTrainee:
    """The VAE's `train_common.Trainee`: one Adam over encoder and decoder, an ELBO step, and
    the decoder drawn and scored as the run's generator (it has no critic)."""

    stat_names: tuple[str, ...] = VAE_STAT_NAMES
    checked = len(VAE_STAT_NAMES)
    batches_per_step = 1
    setting = ""  # fp32 and the ELBO always: nothing to add to the first log line
    note: str | None = None

    def __init__(
        self, spec: TrainSpec, source: BatchSource, rank: int, device: torch.device
    ) -> None:
        self.spec, self.source, self.rank, self.device = spec, source, rank, device
        self.vae = build_vae(spec).to(device)
        self.optimizer = torch.optim.Adam(
            self.vae.parameters(), lr=spec.train.lr, betas=spec.train.betas
        )
        self.vae_train: nn.Module = self.vae  # what the step calls: the DDP wrapper if any

    def distribute(self) -> None:
        """Encoder and decoder train under one DDP wrapper."""
        self.vae_train = wrap_ddp(self.vae, self.device)

    def restore(self, checkpoint: dict[str, Any]) -> int:
        """Load the VAE's weights and Adam state; return the checkpoint's step."""
        return restore_vae_state(checkpoint, spec=self.spec, vae=self.vae, optimizer=self.optimizer)

    def step(self, step: int) -> Tensor:
        """One ELBO step on this rank's batch of `step`, its noise drawn from the seed alone."""
        real = self.source.batch(step).to(self.device)
        noise_generator = generator_for(self.spec.train.seed, Stream.LATENTS, step, self.rank)
        noise = sample_latents(self.spec.latent, len(real), noise_generator).to(self.device)
        return _vae_step(self.vae_train, self.optimizer, real, noise, self.vae.decoder_std)

    @property
    def sampler(self) -> nn.Module:
        """The decoder is the VAE's generator: drawn and scored like a GAN's, for comparison."""
        return self.vae.decoder

    @property
    def critic(self) -> nn.Module | None:
        """None: a VAE has no critic to draw beside its samples."""
        return None

    def summary(self, metrics: dict[str, float]) -> str:
        """ELBO and its two terms, for the report's log line."""
        return (
            f"ELBO {metrics['Loss/VAE/elbo']:.4f}  "
            f"recon {metrics['Loss/VAE/recon']:.4f}  KL {metrics['Loss/VAE/kl']:.4f}"
        )

    def checkpoint(
        self, step: int, fixed_latents: Tensor, rng_states: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """The VAE checkpoint layout (`vae_checkpoint`): the decoder where sampling finds G."""
        return build_vae_checkpoint(
            step=step,
            spec=self.spec,
            vae=self.vae,
            optimizer=self.optimizer,
            fixed_latents=fixed_latents,
            rng_states=rng_states,
        )


def _vae_step(
    vae: nn.Module,
    optimizer: torch.optim.Optimizer,
    real: Tensor,
    noise: Tensor,
    decoder_std: float,
) -> Tensor:
    """One Adam step on -ELBO; returns (elbo, recon, kl), detached, on the device."""
    reconstruction, mean, log_var = vae(real, noise)
    terms = elbo_terms(real, reconstruction, mean, log_var, decoder_std)
    optimizer.zero_grad(set_to_none=True)
    terms.loss.backward()
    optimizer.step()
    return torch.stack([terms.elbo, terms.recon, terms.kl]).detach()
