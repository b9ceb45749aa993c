"""`model.conditional` and the sampling classes: what a spec may ask, refused field by field."""

from typing import Any

import pytest
from flask.testing import FlaskClient

from shared.specs import SampleSpec, SpecError, TrainSpec, validate_job_request
from shared.specs.model import MAX_CLASSES
from shared.specs.sample import MAX_CLASS
from tests.helpers import auth, train_request

MNIST = {"source": "mnist", "key": "datasets/examples/mnist"}


def problems(spec: dict[str, Any], kind: str = "train") -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        validate_job_request({"kind": kind, "name": "x", "spec": spec})
    return {p["path"]: p["message"] for p in info.value.problems}


def test_a_conditional_dcgan_on_mnist_is_accepted_and_classes_stay_open_for_the_worker() -> None:
    spec = TrainSpec.model_validate(
        {"model": {"family": "dcgan", "conditional": True}, "data": MNIST}
    )
    assert spec.model.conditional and spec.model.classes is None
    assert not TrainSpec.model_validate({"model": "dcgan", "data": MNIST}).model.conditional


def test_conditional_on_a_toy_source_is_refused_naming_the_field_and_why() -> None:
    found = problems(
        {"model": {"family": "mlp", "conditional": True}, "data": {"source": "toy:ring8"}}
    )
    assert list(found) == ["spec.model.conditional"]
    assert found["spec.model.conditional"].startswith("toy:ring8 data has no labels")


def test_the_api_refuses_conditional_toy_data_with_a_422_naming_the_field(
    client: FlaskClient, alice: str
) -> None:
    body = train_request(model={"family": "mlp", "conditional": True})
    response = client.post("/api/v1/jobs", json=body, headers=auth(alice))
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert [e["path"] for e in errors] == ["spec.model.conditional"]
    assert "has no labels to condition on" in errors[0]["message"]


@pytest.mark.parametrize(
    ("model", "path", "start"),
    [
        ({"family": "vae", "conditional": True}, "spec.model.conditional", "only mlp and dcgan"),
        (
            {"family": "dcgan", "conditional": True, "pack": 2},
            "spec.model.conditional",
            "a conditional discriminator judges one sample",
        ),
        (
            {"family": "dcgan", "classes": 10},
            "spec.model.classes",
            "the number of classes is for a conditional model",
        ),
        (
            {"family": "dcgan", "conditional": True, "classes": 1},
            "spec.model.classes",
            "Input should be greater than or equal to 2",
        ),
        (
            {"family": "dcgan", "conditional": "yes"},
            "spec.model.conditional",
            "Input should be a valid boolean",
        ),
    ],
)
def test_conditional_options_that_make_no_sense_are_refused(
    model: dict[str, Any], path: str, start: str
) -> None:
    found = problems({"model": model, "data": MNIST})
    assert list(found) == [path]
    assert found[path].startswith(start)


def _sample(**fields: Any) -> SampleSpec:
    return SampleSpec.model_validate({"job_id": "j", **fields})


def test_a_class_grid_draws_every_seed_once_per_class_row() -> None:
    spec = _sample(seeds=[1, 2, 3], class_grid=[0, 7])
    assert spec.image_count == 6
    assert _sample(seeds=[1, 2], classes=[3, 4]).image_count == 2
    assert _sample(interpolation={"from_seed": 1, "to_seed": 2, "steps": 5}, classes=7).classes == 7


@pytest.mark.parametrize(
    ("fields", "path", "start"),
    [
        (
            {"seeds": [1, 2], "classes": [3]},
            "spec.classes",
            "one class per image: 2 images, 1 classes",
        ),
        (
            {"seeds": [1], "classes": 1, "class_grid": [0]},
            "spec.class_grid",
            "give classes or class_grid, not both",
        ),
        (
            {"interpolation": {"from_seed": 1, "to_seed": 2, "steps": 3}, "class_grid": [0, 1]},
            "spec.class_grid",
            "draws the rows of seeds or latents, not of interpolation",
        ),
        (
            {"seeds": list(range(2000)), "class_grid": list(range(10))},
            "spec.class_grid",
            "10 rows of 2000 images make 20000",
        ),
        ({"export": True, "classes": 2}, "spec.classes", "export draws no new images"),
        (
            {"seeds": [1], "class_grid": [-1]},
            "spec.class_grid.0",
            "Input should be greater than or equal to 0",
        ),
    ],
)
def test_sampling_classes_that_do_not_fit_the_images_are_refused(
    fields: dict[str, Any], path: str, start: str
) -> None:
    found = problems({"job_id": "j", **fields}, kind="sample")
    assert path in found, found
    assert found[path].startswith(start)


def test_the_sampling_class_bound_matches_the_training_one() -> None:
    assert MAX_CLASS == MAX_CLASSES - 1


def _submit(client: FlaskClient, token: str, kind: str, spec: dict[str, Any]) -> Any:
    return client.post(
        "/api/v1/jobs", json={"kind": kind, "name": "c", "spec": spec}, headers=auth(token)
    )


@pytest.mark.parametrize(
    ("model", "asked", "path", "message"),
    [
        (
            {"family": "dcgan"},
            {"classes": 3},
            "spec.classes",
            "is not conditional: it draws no classes",
        ),
        (
            {"family": "dcgan", "conditional": True, "classes": 10},
            {"class_grid": [0, 10]},
            "spec.class_grid",
            "class 10 does not exist: the model of job",
        ),
    ],
)
def test_sampling_classes_the_source_model_cannot_draw_are_a_422_at_submission(
    client: FlaskClient,
    alice: str,
    model: dict[str, Any],
    asked: dict[str, Any],
    path: str,
    message: str,
) -> None:
    trained = _submit(client, alice, "train", {"model": model, "data": MNIST, "latent": {"dim": 4}})
    assert trained.status_code == 201, trained.get_json()
    job_id = trained.get_json()["id"]
    refused = _submit(client, alice, "sample", {"job_id": job_id, "seeds": [1], **asked})
    assert refused.status_code == 422
    [error] = refused.get_json()["errors"]
    assert error["path"] == path and message in error["message"]
    accepted = _submit(client, alice, "sample", {"job_id": job_id, "seeds": [1]})
    assert accepted.status_code == 201


def test_an_unconditional_spec_dumps_as_before_and_a_conditional_one_round_trips() -> None:
    plain = TrainSpec.model_validate({"model": "dcgan", "data": MNIST})
    dumped = plain.model_dump()["model"]
    assert "conditional" not in dumped and "classes" not in dumped  # checkpoints' spec JSON
    assert TrainSpec.model_validate_json(plain.model_dump_json()) == plain
    model = {"family": "dcgan", "conditional": True, "classes": 10}
    conditional = TrainSpec.model_validate({"model": model, "data": MNIST})
    assert conditional.model_dump()["model"]["classes"] == 10
    assert TrainSpec.model_validate_json(conditional.model_dump_json()) == conditional


def test_interpolation_classes_the_source_model_cannot_draw_are_a_422_at_submission(
    client: FlaskClient, alice: str
) -> None:
    def path(classes: list[int]) -> dict[str, Any]:
        return {"from_seed": 1, "to_seed": 2, "steps": 3, "classes": classes}

    for model, classes, message in (
        ({"family": "dcgan"}, [0, 1], "is not conditional: it draws no classes"),
        ({"family": "dcgan", "conditional": True, "classes": 10}, [3, 10], "class 10 does not"),
    ):
        spec = {"model": model, "data": MNIST, "latent": {"dim": 4}}
        job_id = _submit(client, alice, "train", spec).get_json()["id"]
        refused = _submit(
            client, alice, "sample", {"job_id": job_id, "interpolation": path(classes)}
        )
        assert refused.status_code == 422
        [error] = refused.get_json()["errors"]
        assert error["path"] == "spec.interpolation.classes" and message in error["message"]
    accepted = _submit(client, alice, "sample", {"job_id": job_id, "interpolation": path([3, 9])})
    assert accepted.status_code == 201, accepted.get_json()
