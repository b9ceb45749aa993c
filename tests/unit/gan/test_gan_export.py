"""A generator exported for use outside ganforge: safetensors weights, a TorchScript module
that reproduces the service's outputs, and a card that says what they are."""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from typing import Any

import pytest
import torch
from gan_testing import RecordingHooks, mnist_spec, ring_spec
from safetensors.torch import load as load_safetensors

from shared.specs import LatentSpec
from worker.gan.export import export_generator
from worker.gan.priors import latents_for_seeds
from worker.gan.sample import load_generator
from worker.gan.train import train

CPU = torch.device("cpu")


def _trained(spec: Any) -> dict[str, Any]:
    hooks = RecordingHooks()
    train(spec, hooks=hooks)
    return hooks.last_checkpoint


def _torchscript(data: bytes) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, not gone
        return torch.jit.load(io.BytesIO(data), map_location="cpu")


@pytest.fixture(scope="module")
def digits_with_ema() -> dict[str, Any]:
    return _trained(mnist_spec(train={"steps": 3, "batch_size": 8, "ema_decay": 0.9}))


def test_the_torchscript_module_reproduces_the_services_images(
    digits_with_ema: dict[str, Any],
) -> None:
    exported = export_generator(digits_with_ema, "a" * 32)
    module = _torchscript(exported.torchscript)
    generator, _ = load_generator(digits_with_ema, CPU)
    latents = latents_for_seeds(LatentSpec(dim=8), [3, 1, 4, 1, 5])  # another batch size
    with torch.no_grad():
        expected, got = generator(latents), module(latents)
    assert got.shape == expected.shape == (5, 1, 28, 28)
    assert (got - expected).abs().max().item() <= 1e-6


def test_the_weights_are_the_generator_average_as_safetensors(
    digits_with_ema: dict[str, Any],
) -> None:
    exported = export_generator(digits_with_ema, "a" * 32)
    weights = load_safetensors(exported.weights)
    average = digits_with_ema["generator_ema"]
    assert weights.keys() == average.keys()
    assert all(torch.equal(weights[name], average[name].cpu()) for name in average)
    assert not all(torch.equal(weights[n], digits_with_ema["generator"][n]) for n in average)
    # The same checkpoint exports to the same bytes: the card's digest is reproducible
    # (safetensors itself writes its metadata in an order that changes from call to call).
    again = {export_generator(digits_with_ema, "a" * 32).weights for _ in range(6)}
    assert again == {exported.weights}
    assert load_safetensors(exported.weights).keys() == average.keys()


def test_the_card_says_what_the_generator_is_and_where_it_came_from(
    digits_with_ema: dict[str, Any],
) -> None:
    exported = export_generator(digits_with_ema, "b" * 32)
    card = json.loads(exported.card)
    assert card["family"] == "dcgan" and card["model"]["width"] == 4
    assert card["latent"] == {"dim": 8, "prior": "gaussian"}
    assert card["output"] == {"kind": "images", "shape": [1, 28, 28], "range": [-1, 1]}
    assert card["source"] == {"job_id": "b" * 32, "step": 3, "data": "mnist"}
    assert card["weights_from"] == "generator_ema"
    assert card["safetensors"]["sha256"] == hashlib.sha256(exported.weights).hexdigest()
    assert card["torchscript"]["sha256"] == hashlib.sha256(exported.torchscript).hexdigest()


def test_a_point_generator_without_an_average_exports_its_own_weights() -> None:
    checkpoint = _trained(ring_spec(train={"steps": 2, "batch_size": 8}))
    exported = export_generator(checkpoint, "c" * 32)
    card = json.loads(exported.card)
    assert card["weights_from"] == "generator" and card["output"]["shape"] == [2]
    latents = latents_for_seeds(LatentSpec(dim=4), list(range(10)))
    generator, _ = load_generator(checkpoint, CPU)
    with torch.no_grad():
        difference = _torchscript(exported.torchscript)(latents) - generator(latents)
    assert difference.abs().max().item() <= 1e-6
