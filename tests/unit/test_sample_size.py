"""The pixel bound of a sampling job at 128 and 256 px: a spec that would draw more pixels
than a job may is refused naming its field, at submission when the source job's spec states
its image side, and by the worker from the checkpoint."""

from typing import Any

import pytest
from flask.testing import FlaskClient

from shared.specs import SampleSpec, TrainSpec
from shared.specs.sample_size import MAX_INVERT_PIXELS, MAX_SAMPLE_PIXELS, sample_size_problem
from tests.helpers import auth
from worker.gan.errors import SampleSizeError
from worker.gan.sample import check_size

MNIST_256 = {"source": "mnist", "key": "datasets/examples/mnist", "resize": 256}


def _sample(**fields: Any) -> SampleSpec:
    return SampleSpec.model_validate({"job_id": "j", **fields})


def test_every_job_valid_at_64_px_stays_valid_and_256_px_gets_the_same_pixels() -> None:
    assert sample_size_problem(_sample(seeds=list(range(10_000))), 64) is None
    assert MAX_SAMPLE_PIXELS // 256**2 == 625 and MAX_SAMPLE_PIXELS // 128**2 == 2_500
    assert sample_size_problem(_sample(seeds=list(range(625))), 256) is None
    problem = sample_size_problem(_sample(seeds=list(range(626))), 256)
    assert problem == {
        "path": "spec.seeds",
        "message": "626 images of 256x256 px are 41,025,536 pixels; a sampling job draws at "
        "most 40,960,000 (625 images of this size)",
    }


@pytest.mark.parametrize(
    ("fields", "side", "path"),
    [
        ({"seeds": list(range(100)), "class_grid": list(range(10))}, 256, "spec.class_grid"),
        ({"neighbourhood": {"centre": 1, "radii": [1.0] * 16, "count": 63}}, 256,
         "spec.neighbourhood"),
        ({"invert": {"images": {"dataset_id": "a" * 32, "count": 8}, "restarts": 8}}, 256,
         "spec.invert.restarts"),
        ({"invert": {"images": {"dataset_id": "a" * 32, "count": 64}}}, 256, "spec.invert.images"),
    ],
)  # fmt: skip
def test_each_mode_past_the_bound_names_the_field_to_change(
    fields: dict[str, Any], side: int, path: str
) -> None:
    problem = sample_size_problem(_sample(**fields), side)
    assert problem is not None and problem["path"] == path
    assert sample_size_problem(_sample(**fields), 64) is None


def test_an_inversion_optimises_at_most_32_latents_of_256_px() -> None:
    assert MAX_INVERT_PIXELS // 256**2 == 32
    fits = _sample(invert={"images": {"dataset_id": "a" * 32, "count": 4}, "restarts": 8})
    assert sample_size_problem(fits, 256) is None


def test_the_worker_counts_an_artifacts_latents_and_refuses_naming_the_field() -> None:
    trained = TrainSpec.model_validate(
        {"model": "dcgan", "data": {"source": "mnist", "path": "/m", "resize": 256}}
    )
    artifact = _sample(latents={"job_id": "j", "name": "latents.npy"})
    check_size(trained, artifact, 625)
    with pytest.raises(SampleSizeError, match=r"^spec\.latents: 700 images of 256x256 px"):
        check_size(trained, artifact, 700)


def _submit(client: FlaskClient, token: str, kind: str, spec: dict[str, Any]) -> Any:
    return client.post(
        "/api/v1/jobs", json={"kind": kind, "name": "s", "spec": spec}, headers=auth(token)
    )


def test_a_256px_sampling_job_past_the_bound_is_a_422_naming_the_field(
    client: FlaskClient, alice: str
) -> None:
    trained = _submit(client, alice, "train", {"model": "dcgan", "data": MNIST_256})
    assert trained.status_code == 201, trained.get_json()
    job_id = trained.get_json()["id"]
    refused = _submit(client, alice, "sample", {"job_id": job_id, "seeds": list(range(1000))})
    assert refused.status_code == 422
    [error] = refused.get_json()["errors"]
    assert error["path"] == "spec.seeds"
    assert error["message"].startswith("1,000 images of 256x256 px are 65,536,000 pixels")
    accepted = _submit(client, alice, "sample", {"job_id": job_id, "seeds": list(range(625))})
    assert accepted.status_code == 201, accepted.get_json()
