"""A trained generator for use outside ganforge: its weights as safetensors (loadable without
pickle), a TorchScript module that runs without our code (`torch.jit.load(...)(z)`, or from
C++ with libtorch), and a card (JSON) saying what it is, how to feed it and where it came from.

The weights are the generator average (`generator_ema`) when the checkpoint keeps one, as
sampling uses. Both are exported from the CPU in eval mode, so batch norm uses its running
statistics and the module reproduces a sampling job's outputs for the same latents.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes

from worker.gan.models import network_family
from worker.gan.priors import latents_for_seeds
from worker.gan.sample import load_generator

# Bump when the card's fields change meaning, so readers can tell.
CARD_VERSION = 1
# Latents the module is traced with: two, so the trace keeps the batch dimension free.
_TRACE_SEEDS = [0, 1]


@dataclass(frozen=True)
class GeneratorExport:
    weights: bytes  # safetensors of the generator's state_dict
    torchscript: bytes  # torch.jit.save of the traced generator
    card: bytes  # JSON, see `generator_card`


@torch.no_grad()
def export_generator(checkpoint: dict[str, Any], source_job_id: str) -> GeneratorExport:
    """The checkpoint's generator as safetensors, TorchScript and a card; `source_job_id` is
    the training job it comes from, recorded on the card."""
    cpu = torch.device("cpu")
    generator, spec = load_generator(checkpoint, cpu)
    state = {name: tensor.detach().contiguous() for name, tensor in generator.state_dict().items()}
    weights = safetensors_bytes(state, metadata={"format": "pt", "source_job_id": source_job_id})
    example = latents_for_seeds(spec.latent, _TRACE_SEEDS)
    # TorchScript is deprecated in favour of torch.export, but it is still the format that
    # loads with nothing but torch (or libtorch) on any release the lab runs; say it once.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(generator, example)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
    output_shape = list(generator(example).shape[1:])
    card = {
        "card_version": CARD_VERSION,
        "family": spec.model.family,
        "network": network_family(spec),
        "model": spec.model.model_dump(mode="json"),
        "parameters": sum(p.numel() for p in generator.parameters()),
        "latent": {"dim": spec.latent.dim, "prior": spec.latent.prior},
        "input": f"float32 latents [n, {spec.latent.dim}] from the {spec.latent.prior} prior",
        "output": {
            "kind": "images" if spec.data.is_image else "points",
            "shape": output_shape,
            "range": [-1, 1] if spec.data.is_image else None,
        },
        "weights_from": "generator_ema" if checkpoint.get("generator_ema") else "generator",
        "source": {
            "job_id": source_job_id,
            "step": int(checkpoint["step"]),
            "data": spec.data.source,
        },
        "safetensors": _digest(weights),
        "torchscript": _digest(buffer.getvalue()),
    }
    return GeneratorExport(
        weights=weights,
        torchscript=buffer.getvalue(),
        card=json.dumps(card, indent=2).encode(),
    )


def _digest(data: bytes) -> dict[str, Any]:
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
