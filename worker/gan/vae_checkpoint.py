"""Checkpoints of VAE runs: the GAN layout's common entries, with the VAE's own networks.

Same format version and rules as `checkpoint` (weights_only loading, spec as JSON). The
decoder sits under `generator`, so `sample.load_generator` reads a VAE checkpoint like any
other::

    format_version, step, spec_json, latent, fixed_latents, rng_states   as for GANs
    generator       the decoder's state_dict
    encoder         the encoder's state_dict
    optimizer       the one Adam state_dict over encoder and decoder
"""

from __future__ import annotations

from typing import Any

import torch

from shared.specs import TrainSpec
from worker.gan.checkpoint import check_resumable, checkpoint_dict
from worker.gan.vae import Vae


def build_vae_checkpoint(
    *,
    step: int,
    spec: TrainSpec,
    vae: Vae,
    optimizer: torch.optim.Optimizer,
    fixed_latents: torch.Tensor,
    rng_states: list[dict[str, Any]],
) -> dict[str, Any]:
    """The checkpoint dict of a VAE run after `step` steps (see the module docstring)."""
    states = {
        "generator": vae.decoder.state_dict(),
        "encoder": vae.encoder.state_dict(),
        "optimizer": optimizer.state_dict(),
    }
    return checkpoint_dict(
        step=step, spec=spec, states=states, fixed_latents=fixed_latents, rng_states=rng_states
    )


def restore_vae_state(
    checkpoint: dict[str, Any], *, spec: TrainSpec, vae: Vae, optimizer: torch.optim.Optimizer
) -> int:
    """Load weights and optimiser state into a VAE run built from `spec`; return the step."""
    check_resumable(checkpoint, spec)
    vae.decoder.load_state_dict(checkpoint["generator"])
    vae.encoder.load_state_dict(checkpoint["encoder"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    return int(checkpoint["step"])
