"""The `invert` sampling mode's spec: field checks in the model, and what the API checks at
submission against the training job and the images it names (422s naming the field)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from PIL import Image

from shared.config import Settings
from shared.grids import GRID_PADDING
from shared.specs import SampleSpec, SpecError, validate_job_request
from shared.specs.inversion import DEFAULT_INVERT_COUNT, MAX_INVERT_IMAGES, MAX_INVERT_STEPS
from shared.storage import open_storage
from tests.data_builders import grey_pngs, write_npz, write_zip
from tests.helpers import auth
from tests.unit.test_datasets_api import uploaded
from worker.artifacts import put_artifact
from worker.gan import grids

PROBLEM = "application/problem+json"
DATASET = "0123456789abcdef0123456789abcdef"
# A dcgan on MNIST: its generator makes [1, 28, 28], known from the spec alone.
MNIST_GAN = {
    "model": {"family": "dcgan", "width": 8},
    "latent": {"dim": 8},
    "data": {"source": "mnist", "key": "datasets/mnist"},
    "train": {"steps": 10},
    "checkpoint_every": 10,
    "sample_every": 10,
}


def problems(spec: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        validate_job_request({"kind": "sample", "name": "x", "spec": {"job_id": "j", **spec}})
    return {p["path"]: p["message"] for p in info.value.problems}


def test_an_invert_spec_takes_defaults_and_counts_its_images() -> None:
    spec = SampleSpec.model_validate(
        {"job_id": "j", "invert": {"images": {"dataset_id": DATASET, "indices": [4, 1]}}}
    )
    assert spec.mode == "invert" and spec.image_count == 2
    assert spec.invert is not None and spec.invert.loss == "pixel" and spec.invert.restarts == 1
    by_count = SampleSpec.model_validate(
        {"job_id": "j", "invert": {"images": {"job_id": "a", "name": "grid.png", "count": 3}}}
    )
    assert by_count.image_count == 3
    assert by_count.invert is not None and by_count.invert.images.chosen(10) == [0, 1, 2]
    unknown = SampleSpec.model_validate(
        {"job_id": "j", "invert": {"images": {"dataset_id": DATASET}}}
    )
    assert unknown.image_count is None
    assert unknown.invert is not None
    assert unknown.invert.images.chosen(100) == list(range(DEFAULT_INVERT_COUNT))
    assert unknown.invert.images.chosen(3) == [0, 1, 2]
    # Stored as JSON and read back, the spec is the same (the job row keeps the dump).
    assert SampleSpec.model_validate(by_count.model_dump(mode="json")) == by_count


@pytest.mark.parametrize(
    ("field", "invert"),
    [
        ("spec.invert.images", {"images": {"name": "grid.png"}}),
        ("spec.invert.images", {"images": {"dataset_id": DATASET, "count": 2, "indices": [1]}}),
        ("spec.invert.images.dataset_id", {"images": {"dataset_id": "../x"}}),
        ("spec.invert.images.indices.1", {"images": {"dataset_id": DATASET, "indices": [0, -1]}}),
        (
            "spec.invert.images.indices",
            {"images": {"dataset_id": DATASET, "indices": list(range(MAX_INVERT_IMAGES + 1))}},
        ),
        ("spec.invert.images.count", {"images": {"dataset_id": DATASET, "count": 0}}),
        ("spec.invert.images.name", {"images": {"job_id": "a", "name": "latents.npy"}}),
        ("spec.invert.steps", {"images": {"dataset_id": DATASET}, "steps": MAX_INVERT_STEPS + 1}),
        ("spec.invert.lr", {"images": {"dataset_id": DATASET}, "lr": 0.0}),
        ("spec.invert.loss", {"images": {"dataset_id": DATASET}, "loss": "lpips"}),
        ("spec.invert.prior_weight", {"images": {"dataset_id": DATASET}, "prior_weight": -1.0}),
        ("spec.invert.restarts", {"images": {"dataset_id": DATASET}, "restarts": 9}),
        ("spec.invert.iterations", {"images": {"dataset_id": DATASET}, "iterations": 9}),
    ],
)
def test_bad_invert_fields_are_named_by_path(field: str, invert: dict[str, Any]) -> None:
    assert field in problems({"invert": invert})


def test_invert_is_one_mode_among_the_others() -> None:
    both = problems({"seeds": [1], "invert": {"images": {"dataset_id": DATASET}}})
    assert "invert" in both["spec"]
    # One problem, on the spec as a whole (neither mode's own fields are wrong), listing the
    # modes to choose from.
    assert both == {
        "spec": "give exactly one of seeds (a list of seeds, one image each), latents (vectors "
        "or an .npy artifact), interpolation (from_seed and to_seed, or points), neighbourhood, "
        "arithmetic or invert (images to find the latents of); or none of them with export: true"
    }


def test_the_grid_padding_the_api_reads_is_the_one_the_worker_draws() -> None:
    assert GRID_PADDING == grids.GRID_PADDING


# Through the API, against the embedded defaults.


def _train(client: FlaskClient, token: str, spec: dict[str, Any] | None = None) -> str:
    request = {"kind": "train", "name": "gan", "spec": spec or MNIST_GAN}
    response = client.post("/api/v1/jobs", json=request, headers=auth(token))
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["id"])


def _invert(client: FlaskClient, token: str, job_id: str, **invert: Any) -> Any:
    spec = {"job_id": job_id, "invert": invert}
    return client.post(
        "/api/v1/jobs", json={"kind": "sample", "name": "inv", "spec": spec}, headers=auth(token)
    )


def _refused(response: Any) -> dict[str, str]:
    assert response.status_code == 422 and response.mimetype == PROBLEM, response.get_json()
    return {e["path"]: e["message"] for e in response.get_json()["errors"]}


def _digits(tmp_path: Path, count: int = 5, side: int = 28, name: str = "d.npz") -> Path:
    return write_npz(tmp_path / name, data=np.zeros((count, side, side), dtype=np.uint8))


def test_an_invert_job_on_a_fitting_dataset_is_accepted(
    client: FlaskClient, alice: str, tmp_path: Path
) -> None:
    job_id = _train(client, alice)
    dataset = uploaded(client, alice, _digits(tmp_path))["id"]
    accepted = _invert(client, alice, job_id, images={"dataset_id": dataset, "indices": [4, 0]})
    assert accepted.status_code == 201, accepted.get_json()
    assert accepted.get_json()["spec"]["invert"]["images"] == {
        "dataset_id": dataset,
        "indices": [4, 0],
    }


def test_dataset_images_of_another_shape_or_past_its_end_are_422s_naming_the_field(
    client: FlaskClient, alice: str, bob: str, tmp_path: Path
) -> None:
    job_id = _train(client, alice)
    colour = write_npz(tmp_path / "c.npz", data=np.zeros((3, 32, 32, 3), dtype=np.uint8))
    wrong = uploaded(client, alice, colour)["id"]
    assert _refused(_invert(client, alice, job_id, images={"dataset_id": wrong})) == {
        "spec.invert.images.dataset_id": f"dataset {wrong} holds images [3, 32, 32] (channels, "
        "height, width); the generator makes [1, 28, 28]"
    }
    digits = uploaded(client, alice, _digits(tmp_path))["id"]
    past = _refused(
        _invert(client, alice, job_id, images={"dataset_id": digits, "indices": [1, 5]})
    )
    assert past == {
        "spec.invert.images.indices.1": f"5 is past the last; dataset {digits} has 5 images"
    }
    many = _refused(_invert(client, alice, job_id, images={"dataset_id": digits, "count": 6}))
    assert many == {"spec.invert.images.count": f"6 asked for; dataset {digits} has 5 images"}
    bobs = uploaded(client, bob, _digits(tmp_path, name="b.npz"))["id"]
    assert _refused(_invert(client, alice, job_id, images={"dataset_id": bobs})) == {
        "spec.invert.images.dataset_id": f"no dataset {bobs!r} among your datasets"
    }


def test_a_point_generator_and_feature_loss_off_mnist_are_422s(
    client: FlaskClient, alice: str, tmp_path: Path
) -> None:
    digits = uploaded(client, alice, _digits(tmp_path))["id"]
    ring = _train(client, alice, {"model": {"family": "mlp"}, "data": {"source": "toy:ring8"}})
    refused = _refused(_invert(client, alice, ring, images={"dataset_id": digits}))
    assert refused == {"spec.job_id": f"job {ring} makes points; invert needs an image generator"}
    archive = write_zip(tmp_path / "faces.zip", grey_pngs(3, size=28))
    on_images = _train(
        client, alice, {**MNIST_GAN, "data": {"source": "images", "key": "datasets/x"}}
    )
    feature = _invert(
        client, alice, on_images, images={"dataset_id": uploaded(client, alice, archive)["id"]},
        loss="feature",
    )  # fmt: skip
    assert "spec.invert.loss" in _refused(feature)
    assert _refused(feature) == {
        "spec.invert.loss": "feature loss measures in the digit classifier of grey MNIST data; "
        "the generator was trained on images: use pixel"
    }


def _store_png(settings: Settings, job_id: str, name: str, pixels: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    store = open_storage(settings)
    put_artifact(settings.database_url, store, job_id, name, "samples", buffer.getvalue())


def test_a_png_artifact_is_read_as_a_grid_of_the_generators_cells(
    client: FlaskClient, settings: Settings, alice: str
) -> None:
    job_id = _train(client, alice)
    cell = 28 + GRID_PADDING
    _store_png(settings, job_id, "grid.png", np.zeros((2 * cell + 2, 3 * cell + 2), np.uint8))
    accepted = _invert(client, alice, job_id, images={"job_id": job_id, "name": "grid.png"})
    assert accepted.status_code == 201, accepted.get_json()
    past = _invert(client, alice, job_id, images={"job_id": job_id, "name": "grid.png", "count": 7})
    assert _refused(past) == {"spec.invert.images.count": "7 asked for; grid.png has 6 images"}
    _store_png(settings, job_id, "odd.png", np.zeros((40, 40), np.uint8))
    odd = _refused(_invert(client, alice, job_id, images={"job_id": job_id, "name": "odd.png"}))
    assert odd["spec.invert.images.name"].startswith("odd.png is 40x40 px, not a grid of 28x28")
    _store_png(settings, job_id, "rgb.png", np.zeros((cell + 2, cell + 2, 3), np.uint8))
    rgb = _refused(_invert(client, alice, job_id, images={"job_id": job_id, "name": "rgb.png"}))
    assert rgb == {"spec.invert.images.name": "rgb.png has 3 channel(s); the generator makes 1"}
    missing = _refused(_invert(client, alice, job_id, images={"job_id": job_id, "name": "x.png"}))
    assert missing["spec.invert.images.name"].startswith(f"job {job_id} has no artifact 'x.png'")


def test_the_openapi_document_describes_the_invert_mode() -> None:
    from api.openapi import document

    schemas = document()["components"]["schemas"]
    invert = schemas["SampleSpec"]["properties"]["invert"]["anyOf"]
    assert {"$ref": "#/components/schemas/InversionSpec"} in invert
    images = schemas["InversionSpec"]["properties"]["images"]["anyOf"]
    assert {ref["$ref"].rsplit("/", 1)[-1] for ref in images} == {"DatasetImages", "ArtifactImages"}
    assert schemas["InversionSpec"]["properties"]["loss"]["enum"] == ["pixel", "feature"]
