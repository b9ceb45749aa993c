"""Checkpoints: everything a run needs to resume exactly, as bytes `weights_only` can load.

Only tensors, dicts, lists, tuples, numbers, strings, bools and None go inside; the spec is
kept as JSON beside the weights, never as pickled code.

Layout (`CHECKPOINT_FORMAT_VERSION` 2; format 1 lacks the last two entries and still loads)::

    format_version  int
    step            int, training steps completed
    spec_json       str, TrainSpec.model_dump_json()
    latent          {"dim": int, "prior": str}
    generator, discriminator            state_dicts
    g_optimizer, d_optimizer            Adam state_dicts
    fixed_latents   Tensor [n, dim], the latents of every sample snapshot
    rng_states      list, one `seeding.capture_rng_state` dict per rank, by rank
    generator_ema   state_dict of the generator average (`TrainParams.ema_decay`), or None
    grad_scalers    {"g": ..., "d": ...} GradScaler state_dicts; empty dicts unless fp16
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from shared.specs import TrainSpec
from worker.gan.errors import CheckpointError

# Bump when the layout changes, so old workers refuse new checkpoints with a clear message.
# 2: the loss spec became an object, and generator_ema and grad_scalers were added.
CHECKPOINT_FORMAT_VERSION = 2
# Formats this worker reads: older checkpoints keep resuming after an upgrade.
READABLE_FORMAT_VERSIONS = (1, 2)


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside a DDP wrapper, so state_dict keys carry no `module.` prefix."""
    return module.module if isinstance(module, DistributedDataParallel) else module


def checkpoint_dict(
    *,
    step: int,
    spec: TrainSpec,
    states: dict[str, Any],
    fixed_latents: torch.Tensor,
    rng_states: list[dict[str, Any]],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The entries every checkpoint holds (format, step, spec, latent, fixed latents, RNG
    states) around a model's own `states` (state_dicts of its networks and optimisers), then
    `extra`.

    One function for GAN and VAE checkpoints, so their common layout cannot drift apart. The
    order is part of the bytes (`torch.save` keeps it): the same run always gives the same
    checkpoint bytes.
    """
    return {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "step": step,
        "spec_json": spec.model_dump_json(),
        "latent": {"dim": spec.latent.dim, "prior": spec.latent.prior},
        **states,
        "fixed_latents": fixed_latents.detach().cpu(),
        "rng_states": rng_states,
        **(extra or {}),
    }


def build_checkpoint(
    *,
    step: int,
    spec: TrainSpec,
    generator: nn.Module,
    discriminator: nn.Module,
    g_optimizer: torch.optim.Optimizer,
    d_optimizer: torch.optim.Optimizer,
    fixed_latents: torch.Tensor,
    rng_states: list[dict[str, Any]],
    generator_ema: nn.Module | None = None,
    grad_scalers: dict[str, torch.amp.GradScaler] | None = None,
) -> dict[str, Any]:
    """The checkpoint dict of a GAN run after `step` steps (see the module docstring)."""
    states = {
        "generator": unwrap(generator).state_dict(),
        "discriminator": unwrap(discriminator).state_dict(),
        "g_optimizer": g_optimizer.state_dict(),
        "d_optimizer": d_optimizer.state_dict(),
    }
    extra = {
        "generator_ema": None if generator_ema is None else generator_ema.state_dict(),
        "grad_scalers": {name: s.state_dict() for name, s in (grad_scalers or {}).items()},
    }
    return checkpoint_dict(
        step=step,
        spec=spec,
        states=states,
        fixed_latents=fixed_latents,
        rng_states=rng_states,
        extra=extra,
    )


# What sampling never reads: D and both networks' optimiser states, most of a GAN checkpoint
# (a 256 px RGB dcgan at width 64: 278 MB serialised, its generator 48 MB; 96 MB with EMA).
TRAINING_ONLY_KEYS = frozenset({"discriminator", "g_optimizer", "d_optimizer", "grad_scalers"})


def sampling_part(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint without what only resuming training reads: what a warm sampler keeps
    loaded (its cache holds several checkpoints on the device at once)."""
    return {key: value for key, value in checkpoint.items() if key not in TRAINING_ONLY_KEYS}


def checkpoint_to_bytes(checkpoint: dict[str, Any]) -> bytes:
    """Serialise with `torch.save`; the same checkpoint always gives the same bytes."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getvalue()


def load_checkpoint(data: bytes, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read checkpoint bytes safely (`weights_only=True`) and check the format version."""
    try:
        checkpoint = torch.load(io.BytesIO(data), weights_only=True, map_location=map_location)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(f"not a readable checkpoint: {exc}") from exc
    version = checkpoint.get("format_version") if isinstance(checkpoint, dict) else None
    if version not in READABLE_FORMAT_VERSIONS:
        readable = ", ".join(str(known) for known in READABLE_FORMAT_VERSIONS)
        raise CheckpointError(
            f"checkpoint format {version!r}; this worker reads formats {readable}"
        )
    return checkpoint


def checkpoint_spec(checkpoint: dict[str, Any]) -> TrainSpec:
    """The spec a checkpoint was trained with."""
    return TrainSpec.model_validate_json(checkpoint["spec_json"])


def restore_training_state(
    checkpoint: dict[str, Any],
    *,
    spec: TrainSpec,
    generator: nn.Module,
    discriminator: nn.Module,
    g_optimizer: torch.optim.Optimizer,
    d_optimizer: torch.optim.Optimizer,
    generator_ema: nn.Module | None = None,
    grad_scalers: dict[str, torch.amp.GradScaler] | None = None,
) -> int:
    """Load weights and optimiser states into a run built from `spec`; return the step.

    A generator average the checkpoint lacks (EMA switched on at resume) starts at the
    restored generator; loss-scaler states are restored where both runs use fp16.
    """
    check_resumable(checkpoint, spec)
    unwrap(generator).load_state_dict(checkpoint["generator"])
    unwrap(discriminator).load_state_dict(checkpoint["discriminator"])
    g_optimizer.load_state_dict(checkpoint["g_optimizer"])
    d_optimizer.load_state_dict(checkpoint["d_optimizer"])
    if generator_ema is not None:
        generator_ema.load_state_dict(checkpoint.get("generator_ema") or checkpoint["generator"])
    saved_scalers = checkpoint.get("grad_scalers") or {}
    for name, scaler in (grad_scalers or {}).items():
        if scaler.is_enabled() and saved_scalers.get(name):
            scaler.load_state_dict(saved_scalers[name])
    return int(checkpoint["step"])


def check_resumable(checkpoint: dict[str, Any], spec: TrainSpec) -> None:
    """Raise CheckpointError unless `spec` may continue the run `checkpoint` comes from."""
    trained = checkpoint_spec(checkpoint)
    for field in ("model", "latent", "loss"):
        if getattr(trained, field) != getattr(spec, field):
            raise CheckpointError(f"cannot resume: the checkpoint was trained with another {field}")
    if trained.data.source != spec.data.source:
        raise CheckpointError("cannot resume: the checkpoint was trained on another data source")
