from __future__ import annotations

from typing import Any

import pytest

from shared.specs import SampleSpec, SpecError, TrainSpec, validate_job_request

PATH = {"from_seed": 1, "to_seed": 2, "steps": 8}


def problems(spec: dict[str, Any], kind: str = "sample") -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        validate_job_request({"kind": kind, "name": "x", "spec": spec})
    return {p["path"]: p["message"] for p in info.value.problems}


def test_a_seeds_only_spec_still_validates_with_no_extras() -> None:
    spec = SampleSpec.model_validate({"job_id": "j", "seeds": [3, 1]})
    assert (spec.seeds, spec.interpolation, spec.truncation) == ([3, 1], None, None)
    assert spec.image_count == 2


def test_an_interpolation_replaces_seeds_and_leaves_the_method_to_the_prior() -> None:
    spec = SampleSpec.model_validate({"job_id": "j", "interpolation": PATH, "truncation": 0.7})
    assert spec.seeds is None and spec.image_count == 8
    assert spec.interpolation is not None and spec.interpolation.method is None


@pytest.mark.parametrize(
    "spec",
    [{"job_id": "j"}, {"job_id": "j", "seeds": [1], "interpolation": PATH}],
    ids=["neither", "both"],
)
def test_exactly_one_of_seeds_and_interpolation(spec: dict[str, Any]) -> None:
    [message] = problems(spec).values()
    assert "exactly one of seeds" in message and "interpolation" in message


@pytest.mark.parametrize(
    ("field", "spec"),
    [
        ("spec.truncation", {"seeds": [1], "truncation": 0}),
        ("spec.truncation", {"seeds": [1], "truncation": 1.5}),
        ("spec.interpolation.steps", {"interpolation": {**PATH, "steps": 1}}),
        ("spec.interpolation.steps", {"interpolation": {**PATH, "steps": 65}}),
        ("spec.interpolation.method", {"interpolation": {**PATH, "method": "cubic"}}),
        ("spec.interpolation.to_seed", {"interpolation": {"from_seed": 1, "steps": 3}}),
        ("spec.seeds", {"seeds": []}),
    ],
)
def test_bad_sampling_fields_are_named_by_path(field: str, spec: dict[str, Any]) -> None:
    assert field in problems({"job_id": "j", **spec})


def test_a_vae_fits_points_and_images_with_a_gaussian_prior() -> None:
    points = TrainSpec.model_validate({"model": "vae", "data": {"source": "toy:ring8"}})
    images = TrainSpec.model_validate(
        {"model": "vae", "data": {"source": "mnist", "path": "/data/mnist"}}
    )
    assert points.model.family == images.model.family == "vae"


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"latent": {"prior": "uniform"}}, "latent.prior: model vae has a Gaussian prior"),
        ({"loss": "hinge"}, "loss: model vae trains the ELBO"),
        ({"precision": "bf16"}, "precision: model vae trains in fp32"),
    ],
)
def test_a_vae_refuses_options_it_cannot_honour(extra: dict[str, Any], named: str) -> None:
    spec = {"model": "vae", "data": {"source": "toy:ring8"}, **extra}
    field, message = named.split(": ", 1)  # the field blamed becomes the error's path
    assert problems(spec, kind="train")[f"spec.{field}"].startswith(message)
