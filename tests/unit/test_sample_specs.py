from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from shared.config import Settings
from shared.specs import SampleSpec, SpecError, TrainSpec, validate_job_request
from shared.storage import keys, open_storage
from tests.helpers import auth, train_request
from worker.artifacts import put_artifact

PATH = {"from_seed": 1, "to_seed": 2, "steps": 8}
PROBLEM = "application/problem+json"


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


MODES: dict[str, Any] = {
    "seeds": [1, 2],
    "latents": [[0.5, -1.0], [0.0, 2.0]],
    "interpolation": {"points": [1, [0.5, 0.25], 3], "steps": 4},
    "neighbourhood": {"centre": 4, "radii": [0.5, 1.0], "count": 3},
    "arithmetic": [{"seeds": [1, 2, 3], "weight": 1}, {"seed": 4, "weight": -1}, {"seed": 5}],
}


@pytest.mark.parametrize(
    ("mode", "images"),
    [("seeds", 2), ("latents", 2), ("interpolation", 7), ("neighbourhood", 8), ("arithmetic", 4)],
)
def test_the_one_mode_field_given_chooses_the_mode(mode: str, images: int) -> None:
    spec = SampleSpec.model_validate({"job_id": "j", mode: MODES[mode]})
    assert spec.mode == mode and spec.image_count == images
    assert not spec.export


def test_two_modes_at_once_are_refused_and_export_may_stand_alone() -> None:
    [message] = problems({"job_id": "j", "latents": MODES["latents"], **PATH_SPEC}).values()
    assert "exactly one of seeds" in message
    exporting = SampleSpec.model_validate({"job_id": "j", "export": True})
    assert exporting.mode == "export" and exporting.image_count == 0
    both = SampleSpec.model_validate({"job_id": "j", "seeds": [1], "export": True})
    assert both.mode == "seeds" and both.export


def test_latents_may_name_an_npy_artifact_instead_of_listing_vectors() -> None:
    artifact = {"job_id": "abc", "name": "latents.npy"}
    spec = SampleSpec.model_validate({"job_id": "j", "latents": artifact})
    assert spec.latents_artifact is not None and spec.latents_artifact.name == "latents.npy"
    assert spec.image_count is None  # known once the artifact is read
    assert spec.model_dump(mode="json")["latents"] == artifact


PATH_SPEC = {"interpolation": PATH}


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
        ("spec.latents.1.0", {"latents": [[1.0], ["x"]]}),
        ("spec.latents.0.0", {"latents": [[float("nan")]]}),
        ("spec.latents", {"latents": "latents.npy"}),
        ("spec.latents.name", {"latents": {"job_id": "a", "name": "grid.png"}}),
        ("spec.interpolation.points.1", {"interpolation": {"points": [1, "x"], "steps": 3}}),
        ("spec.interpolation.points", {"interpolation": {"points": [1], "steps": 3}}),
        ("spec.interpolation.points", {"interpolation": {**PATH, "points": [1, 2]}}),
        ("spec.interpolation.steps", {"interpolation": {"points": [1, 2, 3], "steps": 40}}),
        ("spec.neighbourhood.radii.0", {"neighbourhood": {"centre": 1, "radii": [0.0]}}),
        ("spec.neighbourhood.count", {"neighbourhood": {"centre": 1, "radii": [1.0], "count": 64}}),
        ("spec.arithmetic.0", {"arithmetic": [{"seed": 1, "seeds": [2]}]}),
        ("spec.arithmetic.0.weight", {"arithmetic": [{"seed": 1, "weight": True}]}),
        ("spec.arithmetic", {"arithmetic": []}),
        ("spec.export", {"seeds": [1], "export": 1}),
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


def test_every_sampling_output_has_a_valid_artifact_name() -> None:
    names = [
        keys.GRID_NAME,
        keys.LATENTS_NAME,
        keys.INTERPOLATION_GIF_NAME,
        keys.NEIGHBOURHOOD_JSON_NAME,
        keys.NEIGHBOURHOOD_PLOT_NAME,
        keys.GENERATOR_WEIGHTS_NAME,
        keys.GENERATOR_CARD_NAME,
        keys.GENERATOR_TORCHSCRIPT_NAME,
    ]
    job_id = "0123456789abcdef0123456789abcdef"
    assert [keys.artifact_key(job_id, name) for name in names] == [
        f"jobs/{job_id}/{name}" for name in names
    ]


# Through the API: latents are checked against the training job's latent.dim (RING_SPEC: 4)
# and an .npy artifact against its owner, its existence and its header, before a job exists.


def _train(client: FlaskClient, token: str) -> str:
    response = client.post("/api/v1/jobs", json=train_request(), headers=auth(token))
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["id"])


def _sample(client: FlaskClient, token: str, spec: dict[str, Any]) -> Any:
    return client.post(
        "/api/v1/jobs", json={"kind": "sample", "name": "s", "spec": spec}, headers=auth(token)
    )


def _store_npy(settings: Settings, job_id: str, name: str, data: bytes) -> None:
    put_artifact(settings.database_url, open_storage(settings), job_id, name, "latents", data)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("field", "mode"),
    [
        ("spec.latents.1", {"latents": [[0.0] * 4, [0.0] * 3]}),
        ("spec.interpolation.points.2", {"interpolation": {"points": [1, 2, [1.0]], "steps": 2}}),
        ("spec.neighbourhood.centre", {"neighbourhood": {"centre": [0.0] * 5, "radii": [1.0]}}),
        ("spec.arithmetic.1.latent", {"arithmetic": [{"seed": 1}, {"latent": [1.0, 2.0]}]}),
    ],
)
def test_a_latent_of_the_wrong_dimension_is_a_422_naming_it(
    client: FlaskClient, alice: str, field: str, mode: dict[str, Any]
) -> None:
    job_id = _train(client, alice)
    refused = _sample(client, alice, {"job_id": job_id, **mode})
    assert refused.status_code == 422 and refused.mimetype == PROBLEM
    [error] = refused.get_json()["errors"]
    assert error["path"] == field and error["message"].endswith("the generator takes 4")


def test_latents_from_an_npy_artifact_of_your_own_job_are_accepted(
    client: FlaskClient, settings: Settings, alice: str
) -> None:
    job_id = _train(client, alice)
    _store_npy(settings, job_id, "latents.npy", _npy(np.zeros((3, 4), dtype=np.float32)))
    spec = {"job_id": job_id, "latents": {"job_id": job_id, "name": "latents.npy"}}
    accepted = _sample(client, alice, spec)
    assert accepted.status_code == 201, accepted.get_json()
    assert accepted.get_json()["spec"]["latents"] == spec["latents"]


@pytest.mark.parametrize("whose", ["unknown", "another user's"])
def test_latents_from_a_job_that_is_not_yours_are_a_422(
    client: FlaskClient, settings: Settings, alice: str, bob: str, whose: str
) -> None:
    job_id = _train(client, alice)
    other = "f" * 32 if whose == "unknown" else _train(client, bob)
    if whose != "unknown":
        _store_npy(settings, other, "latents.npy", _npy(np.zeros((3, 4), dtype=np.float32)))
    spec = {"job_id": job_id, "latents": {"job_id": other, "name": "latents.npy"}}
    refused = _sample(client, alice, spec)
    assert refused.status_code == 422
    assert refused.get_json()["errors"] == [
        {"path": "spec.latents.job_id", "message": f"no job {other!r} among your jobs"}
    ]


def test_an_npy_artifact_name_the_job_does_not_have_is_a_422(
    client: FlaskClient, settings: Settings, alice: str
) -> None:
    job_id = _train(client, alice)
    _store_npy(settings, job_id, "latents.npy", _npy(np.zeros((3, 4), dtype=np.float32)))
    spec = {"job_id": job_id, "latents": {"job_id": job_id, "name": "other.npy"}}
    [error] = _sample(client, alice, spec).get_json()["errors"]
    assert error["path"] == "spec.latents.name"
    assert error["message"] == (
        f"job {job_id} has no artifact 'other.npy' (its .npy artifacts: latents.npy)"
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            _npy(np.zeros((3, 5), dtype=np.float32)),
            "holds latents of 5 numbers; the generator takes 4",
        ),
        (_npy(np.zeros((3, 4), dtype=np.int32)), "has dtype int32"),
        (_npy(np.zeros((2, 3, 4), dtype=np.float32)), "has shape [2, 3, 4]"),
        (_npy(np.array([None, {"z": 1}], dtype=object)), "holds pickled Python objects"),
        (pickle.dumps([[0.0] * 4]), "not a readable .npy file"),
    ],
    ids=["dimension", "dtype", "shape", "objects", "pickle"],
)
def test_an_npy_artifact_that_cannot_be_latents_is_a_422_read_from_its_header(
    client: FlaskClient, settings: Settings, alice: str, data: bytes, message: str
) -> None:
    job_id = _train(client, alice)
    _store_npy(settings, job_id, "latents.npy", data)
    spec = {"job_id": job_id, "latents": {"job_id": job_id, "name": "latents.npy"}}
    refused = _sample(client, alice, spec)
    assert refused.status_code == 422
    [error] = refused.get_json()["errors"]
    assert error["path"] in ("spec.latents", "spec.latents.name")
    assert error["message"].startswith("latents.npy") and message in error["message"], error
