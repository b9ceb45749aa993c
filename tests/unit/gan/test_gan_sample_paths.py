from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import torch
from gan_testing import CELL, mnist_spec, ring_spec, trained_checkpoint
from PIL import Image

from shared.specs import LatentSpec, SampleSpec
from worker.gan.priors import latents_for_seeds
from worker.gan.sample import sample_for_seeds, sample_for_spec

CPU = torch.device("cpu")


@pytest.fixture(scope="module", params=["dcgan", "vae"])
def image_checkpoint(request: pytest.FixtureRequest) -> dict[str, Any]:
    return trained_checkpoint(
        mnist_spec(model={"family": request.param, "width": 4}, train={"steps": 2, "batch_size": 8})
    )


def _spec(**fields: Any) -> SampleSpec:
    return SampleSpec.model_validate({"job_id": "j", **fields})


def test_an_interpolation_gives_steps_images_in_one_row_from_seed_to_seed(
    image_checkpoint: dict[str, Any],
) -> None:
    spec = _spec(interpolation={"from_seed": 11, "to_seed": 12, "steps": 7})
    result = sample_for_spec(image_checkpoint, spec, CPU)
    assert Image.open(io.BytesIO(result.png)).size == (7 * CELL + 2, CELL + 2)
    assert result.latents.dtype == np.float32 and result.latents.shape == (7, 8)
    ends = latents_for_seeds(LatentSpec(dim=8), [11, 12]).numpy()
    assert np.array_equal(result.latents[[0, -1]], ends)


def test_the_same_sampling_spec_gives_byte_identical_pngs(
    image_checkpoint: dict[str, Any],
) -> None:
    spec = _spec(
        interpolation={"from_seed": 1, "to_seed": 2, "steps": 5, "method": "lerp"}, truncation=0.6
    )
    first = sample_for_spec(image_checkpoint, spec, CPU)
    second = sample_for_spec(image_checkpoint, spec, CPU)
    assert first.png == second.png
    assert np.array_equal(first.latents, second.latents)


def test_the_latents_artifact_holds_the_truncated_latents_that_were_drawn(
    image_checkpoint: dict[str, Any],
) -> None:
    plain = sample_for_spec(image_checkpoint, _spec(seeds=[4, 5, 6]), CPU)
    truncated = sample_for_spec(image_checkpoint, _spec(seeds=[4, 5, 6], truncation=0.5), CPU)
    assert np.array_equal(truncated.latents, plain.latents * np.float32(0.5))
    assert truncated.png != plain.png
    # Without extras, a spec samples exactly as the seeds-only path always has.
    assert plain.png == sample_for_seeds(image_checkpoint, [4, 5, 6], CPU).png
    untruncated = sample_for_spec(image_checkpoint, _spec(seeds=[4, 5, 6], truncation=1.0), CPU)
    assert untruncated.png == plain.png


def test_point_models_draw_an_interpolation_as_a_scatter() -> None:
    checkpoint = trained_checkpoint(ring_spec(train={"steps": 2, "batch_size": 8}))
    spec = _spec(interpolation={"from_seed": 1, "to_seed": 2, "steps": 16})
    result = sample_for_spec(checkpoint, spec, CPU)
    assert Image.open(io.BytesIO(result.png)).size == (512, 512)
    assert result.latents.shape == (16, 4)
