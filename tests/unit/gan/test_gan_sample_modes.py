"""What each sampling mode draws from a trained generator: explicit latents, paths through
several points with their GIF, neighbourhoods with their distances, latent arithmetic."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
import torch
from gan_testing import CELL, mnist_spec, ring_spec, trained_checkpoint
from PIL import Image

from shared.specs import SampleSpec
from worker.gan.latents import read_latents_npy
from worker.gan.sample import sample_for_seeds, sample_for_spec

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits() -> dict[str, Any]:
    return trained_checkpoint(mnist_spec(train={"steps": 2, "batch_size": 8}))


@pytest.fixture(scope="module")
def ring() -> dict[str, Any]:
    """A small ring8 generator trained for real: 300 steps, a second or two on one thread."""
    train_params = {"steps": 300, "batch_size": 64, "lr": 1e-3, "seed": 2}
    return trained_checkpoint(ring_spec(train=train_params, checkpoint_every=300, sample_every=300))


def _spec(**fields: Any) -> SampleSpec:
    return SampleSpec.model_validate({"job_id": "j", **fields})


def test_explicit_latents_equal_to_the_seeds_latents_give_byte_identical_pngs(
    digits: dict[str, Any],
) -> None:
    seeds = sample_for_seeds(digits, [3, 1, 4, 1, 5], CPU)
    from_json = sample_for_spec(digits, _spec(latents=seeds.latents.tolist()), CPU)
    assert from_json.png == seeds.png
    assert np.array_equal(from_json.latents, seeds.latents)
    buffer = io.BytesIO()
    np.save(buffer, seeds.latents)
    loaded = read_latents_npy(buffer.getvalue(), 8, "latents.npy")
    artifact = {"job_id": "s", "name": "latents.npy"}
    from_npy = sample_for_spec(digits, _spec(latents=artifact), CPU, loaded)
    assert from_npy.png == seeds.png


def test_a_path_through_several_points_is_one_row_and_a_gif_of_every_image(
    digits: dict[str, Any],
) -> None:
    path = {"points": [1, 2, 3], "steps": 4}
    result = sample_for_spec(digits, _spec(interpolation=path), CPU)
    assert Image.open(io.BytesIO(result.png)).size == (7 * CELL + 2, CELL + 2)
    gif = Image.open(io.BytesIO(result.gif or b""))
    assert gif.format == "GIF" and gif.n_frames == 7
    assert min(gif.size) >= 112  # enlarged from 28 px to be seen
    assert result.neighbourhood is None


def test_a_path_on_point_data_animates_the_path_so_far_over_the_data(
    ring: dict[str, Any], digits: dict[str, Any]
) -> None:
    result = sample_for_spec(
        ring, _spec(interpolation={"from_seed": 1, "to_seed": 2, "steps": 5}), CPU
    )
    gif = Image.open(io.BytesIO(result.gif or b""))
    assert gif.n_frames == 5
    # A path that stays put draws the same points in every frame: still one frame an image
    # (Pillow merges identical frames; the progress strip under each keeps them apart).
    still = {"from_seed": 1, "to_seed": 1, "steps": 8}
    for data in (ring, digits):
        result = sample_for_spec(data, _spec(interpolation=still), CPU)
        assert Image.open(io.BytesIO(result.gif or b"")).n_frames == 8


def test_neighbourhood_distance_grows_with_the_radius_on_a_trained_ring(
    ring: dict[str, Any],
) -> None:
    radii = [0.05, 0.25, 1.0, 3.0]
    spec = _spec(neighbourhood={"centre": 7, "radii": radii, "count": 16, "seed": 1})
    result = sample_for_spec(ring, spec, CPU)
    assert result.latents.shape == (4 * 17, 4)
    assert result.neighbourhood is not None
    report = json.loads(result.neighbourhood.json)
    assert report["radii"] == radii and report["count"] == 16
    assert report["unit"].startswith("Euclidean")
    mean = report["mean_distance"]
    assert mean == sorted(mean) and len(set(mean)) == len(mean), mean
    assert mean[0] > 0
    assert Image.open(io.BytesIO(result.neighbourhood.plot)).format == "PNG"
    again = sample_for_spec(ring, spec, CPU)
    assert again.neighbourhood is not None and again.neighbourhood.json == result.neighbourhood.json


def test_an_image_neighbourhood_is_a_row_per_radius_with_the_centre_first(
    digits: dict[str, Any],
) -> None:
    spec = _spec(neighbourhood={"centre": 2, "radii": [0.5, 4.0], "count": 3})
    result = sample_for_spec(digits, spec, CPU)
    assert Image.open(io.BytesIO(result.png)).size == (4 * CELL + 2, 2 * CELL + 2)
    assert result.neighbourhood is not None
    report = json.loads(result.neighbourhood.json)
    assert report["unit"] == "RMS over pixels, in 8-bit levels (0-255)"
    assert all(0 <= d <= 255 for row in report["distances"] for d in row)
    assert report["mean_distance"][0] < report["mean_distance"][1]


def test_arithmetic_of_one_seed_with_weight_one_draws_that_seed(digits: dict[str, Any]) -> None:
    result = sample_for_spec(digits, _spec(arithmetic=[{"seed": 6, "weight": 1}]), CPU)
    # The strip is the term's image and the result's: the seed drawn twice.
    assert result.png == sample_for_seeds(digits, [6, 6], CPU).png


def test_arithmetic_draws_each_term_and_the_result_in_one_strip(digits: dict[str, Any]) -> None:
    terms = [{"seeds": [1, 2, 3], "weight": 1}, {"seed": 4, "weight": -1}, {"seed": 5}]
    result = sample_for_spec(digits, _spec(arithmetic=terms), CPU)
    assert Image.open(io.BytesIO(result.png)).size == (4 * CELL + 2, CELL + 2)
    assert result.latents.shape == (4, 8)
    np.testing.assert_allclose(
        result.latents[3], result.latents[0] - result.latents[1] + result.latents[2], atol=1e-6
    )
