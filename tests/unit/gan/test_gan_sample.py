from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
import torch
from gan_testing import RecordingHooks, mnist_spec, ring_spec
from PIL import Image
from safetensors.torch import load as load_safetensors

from shared.specs import LatentSpec, SampleSpec
from worker.gan.checkpoint import TRAINING_ONLY_KEYS, sampling_part
from worker.gan.export import export_generator
from worker.gan.priors import latents_for_seeds
from worker.gan.sample import load_generator, sample_for_seeds, sample_for_spec
from worker.gan.train import train

CPU = torch.device("cpu")


def _trained(spec: Any) -> dict[str, Any]:
    hooks = RecordingHooks()
    train(spec, hooks=hooks)
    return hooks.last_checkpoint


@pytest.fixture(scope="module")
def dcgan_checkpoint() -> dict[str, Any]:
    return _trained(mnist_spec(train={"steps": 4, "batch_size": 8}))


def test_the_generator_comes_back_in_eval_mode_with_its_spec(
    dcgan_checkpoint: dict[str, Any],
) -> None:
    generator, spec = load_generator(dcgan_checkpoint, CPU)
    assert not generator.training
    assert spec.model.family == "dcgan"


def test_the_same_seeds_give_identical_png_bytes(dcgan_checkpoint: dict[str, Any]) -> None:
    first = sample_for_seeds(dcgan_checkpoint, [3, 1, 4, 1, 5], CPU)
    second = sample_for_seeds(dcgan_checkpoint, [3, 1, 4, 1, 5], CPU)
    assert first.png == second.png
    assert np.array_equal(first.latents, second.latents)


def test_the_sampling_part_a_warm_sampler_keeps_draws_and_exports_what_the_whole_does(
    dcgan_checkpoint: dict[str, Any],
) -> None:
    kept = sampling_part(dcgan_checkpoint)
    assert not TRAINING_ONLY_KEYS & set(kept) and set(dcgan_checkpoint) >= TRAINING_ONLY_KEYS
    assert sum(_tensor_bytes(v) for v in kept.values()) < 0.5 * sum(
        _tensor_bytes(v) for v in dcgan_checkpoint.values()
    )
    spec = SampleSpec.model_validate(
        {"job_id": "j", "interpolation": {"from_seed": 1, "to_seed": 2, "steps": 3}}
    )
    drawn, whole = sample_for_spec(kept, spec, CPU), sample_for_spec(dcgan_checkpoint, spec, CPU)
    assert (drawn.png, drawn.gif) == (whole.png, whole.gif)
    exported, exported_whole = export_generator(kept, "j"), export_generator(dcgan_checkpoint, "j")
    weights = [load_safetensors(e.weights) for e in (exported, exported_whole)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])
    # The cards, but for their files' digests: two exports of one generator differ in bytes
    # (safetensors writes its metadata in no fixed order; TorchScript archives vary).
    cards = [json.loads(e.card) for e in (exported, exported_whole)]
    assert cards[0]["weights_from"] == "generator"
    digests = {"torchscript": None, "safetensors": None}
    assert {**cards[0], **digests} == {**cards[1], **digests}


def _tensor_bytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def test_images_come_in_seed_order_as_a_square_ish_grid(dcgan_checkpoint: dict[str, Any]) -> None:
    result = sample_for_seeds(dcgan_checkpoint, [10, 20, 30, 40, 50], CPU)
    assert Image.open(io.BytesIO(result.png)).size == (3 * 30 + 2, 2 * 30 + 2)
    assert result.latents.dtype == np.float32 and result.latents.shape == (5, 8)
    expected = latents_for_seeds(LatentSpec(dim=8), [10, 20, 30, 40, 50]).numpy()
    assert np.array_equal(result.latents, expected)


def test_point_models_sample_as_a_scatter_over_real_data() -> None:
    checkpoint = _trained(ring_spec(train={"steps": 2, "batch_size": 8}))
    result = sample_for_seeds(checkpoint, [1, 2, 3], CPU)
    assert Image.open(io.BytesIO(result.png)).size == (512, 512)
    assert result.png == sample_for_seeds(checkpoint, [1, 2, 3], CPU).png
