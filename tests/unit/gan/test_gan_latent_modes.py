"""The latents each sampling mode draws: paths through several points, neighbourhoods,
arithmetic, explicit vectors and `.npy` files of them."""

from __future__ import annotations

import io
import math
import pickle
from typing import Any

import numpy as np
import pytest
import torch

from shared.specs import LatentSpec, SampleSpec
from worker.gan.errors import LatentsError
from worker.gan.latents import (
    interpolate_through,
    latents_for_sampling,
    read_latents_npy,
    slerp,
    unit_directions,
)
from worker.gan.priors import latents_for_seeds

LATENT = LatentSpec(dim=8)


def _spec(**fields: Any) -> SampleSpec:
    return SampleSpec.model_validate({"job_id": "j", **fields})


def _npy(array: Any, **save: Any) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, **save)
    return buffer.getvalue()


@pytest.mark.parametrize("method", ["lerp", "slerp"])
def test_a_multi_point_path_passes_exactly_through_every_point(method: str) -> None:
    vector = [0.5, -1.0, 2.0, 0.0, 1.5, -0.25, 3.0, 1.0]
    points: list[int | list[float]] = [3, vector, 9, 4]
    path = {"points": points, "steps": 6, "method": method}
    z = latents_for_sampling(LATENT, _spec(interpolation=path))
    assert z.shape == (3 * 5 + 1, 8) and z.dtype == torch.float32
    expected = [
        latents_for_seeds(LATENT, [3])[0],
        torch.tensor(vector),
        latents_for_seeds(LATENT, [9])[0],
        latents_for_seeds(LATENT, [4])[0],
    ]
    for index, point in enumerate(expected):
        assert torch.equal(z[index * 5], point), f"point {index} is not on the path"


def test_two_points_are_the_from_seed_to_seed_path() -> None:
    pair = latents_for_sampling(
        LATENT, _spec(interpolation={"from_seed": 1, "to_seed": 2, "steps": 7})
    )
    points = latents_for_sampling(LATENT, _spec(interpolation={"points": [1, 2], "steps": 7}))
    assert torch.equal(pair, points)


def test_slerp_between_unit_vectors_stays_on_the_unit_sphere() -> None:
    ends = latents_for_seeds(LatentSpec(dim=64), [5, 6, 7])
    units = ends / ends.norm(dim=1, keepdim=True)
    t = torch.linspace(0, 1, 33, dtype=torch.float64)
    norms = slerp(units[0], units[1], t).norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-6)
    through = interpolate_through(list(units), 17, "slerp").norm(dim=1)
    assert torch.allclose(through, torch.ones_like(through), atol=1e-6)


def test_neighbours_lie_at_their_radius_in_rows_that_start_with_the_centre() -> None:
    spec = _spec(neighbourhood={"centre": 11, "radii": [0.5, 2.0], "count": 5, "seed": 3})
    z = latents_for_sampling(LATENT, spec)
    assert z.shape == (2 * 6, 8)
    centre = latents_for_seeds(LATENT, [11])[0]
    rows = z.reshape(2, 6, 8)
    assert torch.equal(rows[0, 0], centre) and torch.equal(rows[1, 0], centre)
    for row, radius in zip(rows, [0.5, 2.0], strict=True):
        distances = (row[1:] - centre).norm(dim=1)
        assert torch.allclose(distances, torch.full((5,), radius), rtol=1e-5)
    # One direction per column, the same at every radius.
    assert torch.allclose((rows[1, 1:] - centre) / 2.0, (rows[0, 1:] - centre) / 0.5, atol=1e-5)


def test_neighbourhood_directions_are_unit_and_reproducible_from_their_seed() -> None:
    first = unit_directions(16, 10, seed=4)
    assert torch.allclose(first.norm(dim=1), torch.ones(10, dtype=torch.float64))
    assert torch.equal(first, unit_directions(16, 10, seed=4))
    assert not torch.equal(first, unit_directions(16, 10, seed=5))


def test_arithmetic_draws_each_term_then_the_weighted_sum() -> None:
    terms = [
        {"seeds": [1, 2, 3], "weight": 1},
        {"seed": 4, "weight": -1},
        {"latent": [0.25] * 8, "weight": 0.5},
    ]
    z = latents_for_sampling(LATENT, _spec(arithmetic=terms))
    mean = latents_for_seeds(LATENT, [1, 2, 3]).double().mean(0).float()
    four = latents_for_seeds(LATENT, [4])[0]
    assert z.shape == (4, 8)
    assert torch.equal(z[0], mean) and torch.equal(z[1], four)
    assert torch.equal(z[2], torch.full((8,), 0.25))
    assert torch.allclose(z[3], mean - four + 0.125, atol=1e-6)


def test_arithmetic_of_one_seed_with_weight_one_is_that_seeds_latent() -> None:
    z = latents_for_sampling(LATENT, _spec(arithmetic=[{"seed": 8, "weight": 1}]))
    assert torch.equal(z[1], latents_for_seeds(LATENT, [8])[0])


def test_truncation_applies_to_every_mode() -> None:
    for mode in (
        {"latents": [[1.0] * 8]},
        {"interpolation": {"points": [1, 2, 3], "steps": 3}},
        {"neighbourhood": {"centre": 1, "radii": [1.0], "count": 2}},
        {"arithmetic": [{"seed": 1}, {"seed": 2}]},
    ):
        plain = latents_for_sampling(LATENT, _spec(**mode))
        shrunk = latents_for_sampling(LATENT, _spec(**mode, truncation=0.5))
        assert torch.equal(shrunk, plain * 0.5), mode


def test_explicit_vectors_are_exactly_the_latents_of_the_seeds_they_copy() -> None:
    seeds = latents_for_seeds(LATENT, [5, 6])
    spec = _spec(latents=seeds.tolist())
    assert torch.equal(latents_for_sampling(LATENT, spec), seeds)


@pytest.mark.parametrize(
    ("field", "spec"),
    [
        ("spec.latents.1", {"latents": [[0.0] * 8, [0.0] * 3]}),
        ("spec.interpolation.points.1", {"interpolation": {"points": [1, [0.0] * 9], "steps": 2}}),
        ("spec.neighbourhood.centre", {"neighbourhood": {"centre": [1.0], "radii": [1.0]}}),
        ("spec.arithmetic.0.latent", {"arithmetic": [{"latent": [1.0] * 7}]}),
    ],
)
def test_vectors_of_another_dimension_fail_naming_their_field(
    field: str, spec: dict[str, Any]
) -> None:
    with pytest.raises(LatentsError, match=rf"^{field}: has \d numbers; the generator takes 8"):
        latents_for_sampling(LATENT, _spec(**spec))


def test_an_npy_of_latents_is_read_as_float32() -> None:
    seeds = latents_for_seeds(LATENT, [1, 2, 3])
    assert torch.equal(read_latents_npy(_npy(seeds.numpy()), 8, "latents.npy"), seeds)
    wide = read_latents_npy(_npy(seeds.numpy().astype(np.float64)), 8, "latents.npy")
    assert wide.dtype == torch.float32 and torch.equal(wide, seeds)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            _npy(np.array([{"z": 1}, None], dtype=object), allow_pickle=True),
            "pickled Python objects",
        ),
        (pickle.dumps([[0.0] * 8]), "not an .npy file"),
        (_npy(np.zeros((2, 5), dtype=np.float32)), "latents of 5 numbers; the generator takes 8"),
        (_npy(np.zeros(8, dtype=np.float32)), "shape [8]"),
        (_npy(np.zeros((2, 8), dtype=np.int64)), "dtype int64"),
        (_npy(np.full((1, 8), math.nan, dtype=np.float32)), "NaN"),
        (b"\x93NUMPY garbage", "cannot be read"),
        (b"PK\x03\x04 an npz", "not an .npy file"),
    ],
    ids=["objects", "pickle", "dimension", "rank", "dtype", "nan", "garbage", "npz"],
)
def test_an_npy_that_is_not_float_latents_fails_with_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(LatentsError, match=r"^spec\.latents: mine\.npy") as info:
        read_latents_npy(data, 8, "mine.npy")
    assert reason in str(info.value)
