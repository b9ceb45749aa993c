"""A trained generator for use outside ganforge: its weights as safetensors (loadable without
pickle), a TorchScript module that runs without our code (`torch.jit.load(...)(z)`, or from
C++ with libtorch), and a card (JSON) saying what it is, how to feed it and where it came from.

The built-in networks are traced. A custom model's generator (worker/gan/plugins.py) is
scripted, else traced, and either is kept only when it reproduces the generator on latents
it was not made from; a generator that does neither exports without TorchScript, and the
card's `torchscript_note` says why (the export does not fail for it).

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
from torch import Tensor, nn

from shared.specs import TrainSpec
from worker.gan.conditional import balanced_labels
from worker.gan.models import network_family
from worker.gan.plugins import describe_error
from worker.gan.priors import latents_for_seeds
from worker.gan.sample import load_generator

# Bump when the card's fields change meaning, so readers can tell.
CARD_VERSION = 1
# Latents the module is traced with: two, so the trace keeps the batch dimension free.
_TRACE_SEEDS = [0, 1]
# Latents a custom generator's TorchScript module is checked on: another batch size, other
# values, so a trace that froze a shape or a branch of the one it was made from shows.
_CHECK_SEEDS = [2, 3, 4]
_UNFAITHFUL = (
    "the module's outputs differ from the generator's on other latents (control flow or "
    "shapes that follow the data?)"
)
# How far the module's outputs may be from the generator's: the same operations, so only
# rounding differs.
_CHECK_TOLERANCE = 1e-5


@dataclass(frozen=True)
class GeneratorExport:
    weights: bytes  # safetensors of the generator's state_dict
    # torch.jit.save of the traced or scripted generator; None when a custom generator does
    # neither (the card's `torchscript_note` says why)
    torchscript: bytes | None
    card: bytes  # JSON, see `export_generator`


def _metadata_in_order(weights: bytes) -> bytes:
    """The same safetensors with its `__metadata__` keys sorted. safetensors writes them from
    a hash map whose order changes from process to process, so the same generator exported
    twice had two digests on its card; sorted, an export is a pure function of the checkpoint.
    The header keeps its length (same keys and values), so every data offset stays valid."""
    size = int.from_bytes(weights[:8], "little")
    header = json.loads(weights[8 : 8 + size])
    header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    if len(text) > size:  # not the compact JSON safetensors writes: leave it as it is
        return weights
    return weights[:8] + text.ljust(size) + weights[8 + size :]


@torch.no_grad()
def export_generator(checkpoint: dict[str, Any], source_job_id: str) -> GeneratorExport:
    """The checkpoint's generator as safetensors, TorchScript and a card; `source_job_id` is
    the training job it comes from, recorded on the card."""
    cpu = torch.device("cpu")
    generator, spec = load_generator(checkpoint, cpu)
    state = {name: tensor.detach().contiguous() for name, tensor in generator.state_dict().items()}
    weights = _metadata_in_order(
        safetensors_bytes(state, metadata={"format": "pt", "source_job_id": source_job_id})
    )
    example = latents_for_seeds(spec.latent, _TRACE_SEEDS)
    torchscript, how = _torchscript(generator, spec, example)
    script_entry = None if torchscript is None else {**_digest(torchscript), "made_by": how}
    output_shape = list(generator(example).shape[1:])
    card = {
        "card_version": CARD_VERSION,
        "family": spec.model.family,
        "network": network_family(spec),
        "model": spec.model.model_dump(mode="json"),
        "parameters": sum(p.numel() for p in generator.parameters()),
        "latent": {"dim": spec.latent.dim, "prior": spec.latent.prior},
        "input": _input_words(spec),
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
        "torchscript": script_entry,
    }
    if torchscript is None:
        card["torchscript_note"] = how
    return GeneratorExport(
        weights=weights, torchscript=torchscript, card=json.dumps(card, indent=2).encode()
    )


def _torchscript(
    generator: nn.Module, spec: TrainSpec, example: Tensor
) -> tuple[bytes | None, str]:
    """The generator as TorchScript bytes and how they were made ("trace" or "script"); for a
    custom generator that neither scripts nor traces faithfully, None and why not."""
    # TorchScript is deprecated in favour of torch.export, but it is still the format that
    # loads with nothing but torch (or libtorch) on any release the lab runs; say it once.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if spec.model.family != "custom":
            return _saved(torch.jit.trace(generator, _trace_inputs(spec, example))), "trace"
        assert spec.model.code is not None  # the spec's validator
        reasons = []
        check = latents_for_seeds(spec.latent, _CHECK_SEEDS)
        for made_by in ("script", "trace"):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", torch.jit.TracerWarning)
                    module = _made(generator, made_by, example)
                    faithful = _reproduces(module, generator, check)
            except Exception as exc:  # whatever the user's code does under the compiler
                reasons.append(f"{made_by}: {describe_error(exc, spec.model.code).splitlines()[0]}")
                continue
            if faithful:
                return _saved(module), made_by
            reasons.append(f"{made_by}: {_UNFAITHFUL}")
    return None, "no TorchScript, as the generator neither scripts nor traces; " + "; ".join(
        reasons
    )


def _input_words(spec: TrainSpec) -> str:
    latents = f"float32 latents [n, {spec.latent.dim}] from the {spec.latent.prior} prior"
    if not spec.model.conditional:
        return latents
    classes = spec.model.classes or 0
    return f"{latents}, and int64 classes [n] in 0-{classes - 1} (G(z, y))"


def _trace_inputs(spec: TrainSpec, example: Tensor) -> tuple[Tensor, ...]:
    """What the trace calls G with: the latents, and a conditional G's classes beside them
    (so the exported module takes both)."""
    if not spec.model.conditional:
        return (example,)
    return (example, balanced_labels(len(example), spec.model.classes or 0))


def _made(generator: nn.Module, made_by: str, example: Tensor) -> torch.jit.ScriptModule:
    if made_by == "script":
        return torch.jit.script(generator)  # type: ignore[no-any-return]
    return torch.jit.trace(generator, example)  # type: ignore[no-any-return]


def _reproduces(module: torch.jit.ScriptModule, generator: nn.Module, latents: Tensor) -> bool:
    expected, got = generator(latents), module(latents)
    if not isinstance(got, Tensor) or got.shape != expected.shape:
        return False
    return bool((got - expected).abs().max() <= _CHECK_TOLERANCE)


def _saved(module: torch.jit.ScriptModule) -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(module, buffer)
    return buffer.getvalue()


def _digest(data: bytes) -> dict[str, Any]:
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
