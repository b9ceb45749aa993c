import pytest

from shared.specs import LossSpec, SampleSpec, SpecError, TrainSpec, validate_job_request

RING = {"model": "mlp", "data": {"source": "toy:ring8"}}


def paths(exc: SpecError) -> dict[str, str]:
    return {p["path"]: p["message"] for p in exc.problems}


def test_minimal_train_spec_gets_documented_defaults() -> None:
    spec = TrainSpec.model_validate(RING)
    assert spec.model.family == "mlp"
    assert spec.latent.dim == 100 and spec.latent.prior == "gaussian"
    assert spec.loss == LossSpec(name="non_saturating", gp_lambda=None, critic_steps=1)
    assert spec.precision == "fp32" and spec.train.ema_decay is None
    assert spec.resources.devices == 1


def test_request_errors_name_each_bad_field_by_path() -> None:
    body = {
        "kind": "train",
        "name": "x",
        "spec": {
            "model": "mlp",
            "data": {"source": "toy:ring8"},
            "latent": {"dim": 0, "prior": "laplace"},
            "train": {"steps": "many", "batch_sise": 3},
        },
    }
    with pytest.raises(SpecError) as info:
        validate_job_request(body)
    found = paths(info.value)
    assert "spec.latent.dim" in found
    assert "spec.latent.prior" in found
    assert "spec.train.steps" in found
    assert found["spec.train.batch_sise"] == "unknown field"


def test_envelope_errors_are_reported_before_the_spec() -> None:
    with pytest.raises(SpecError) as info:
        validate_job_request({"kind": "paint", "name": "", "spec": {}, "colour": 1})
    found = paths(info.value)
    assert {"kind", "name", "colour"} <= set(found)


def test_non_object_body_is_an_error_not_a_crash() -> None:
    with pytest.raises(SpecError) as info:
        validate_job_request([1, 2])
    assert info.value.problems


def test_family_must_fit_the_data() -> None:
    with pytest.raises(ValueError, match="dcgan needs image data"):
        TrainSpec.model_validate({"model": "dcgan", "data": {"source": "toy:ring8"}})


@pytest.mark.parametrize(
    "data",
    [
        {"source": "mnist"},
        {"source": "mnist", "path": "/d", "key": "datasets/m"},
        {"source": "toy:ring8", "path": "/d"},
        {"source": "mnist", "key": "jobs/0123/checkpoints"},
        {"source": "mnist", "key": "datasets/../jobs"},
    ],
)
def test_data_location_rules(data: dict) -> None:
    with pytest.raises(ValueError):
        TrainSpec.model_validate({"model": "dcgan", "data": data})


def test_dataset_key_under_datasets_is_accepted() -> None:
    spec = TrainSpec.model_validate(
        {"model": "dcgan", "data": {"source": "mnist", "key": "datasets/mnist/"}}
    )
    assert spec.data.key == "datasets/mnist/"


def test_loss_is_a_name_or_an_object_with_its_parameters() -> None:
    by_name = TrainSpec.model_validate({**RING, "loss": "hinge"})
    assert by_name.loss == TrainSpec.model_validate({**RING, "loss": {"name": "hinge"}}).loss
    wgan = TrainSpec.model_validate({**RING, "loss": {"name": "wgan_gp", "gp_lambda": 0.1}})
    assert (wgan.loss.gp_lambda, wgan.loss.critic_steps) == (0.1, 5)
    assert TrainSpec.model_validate_json(wgan.model_dump_json()) == wgan


@pytest.mark.parametrize(
    ("extra", "path", "message"),
    [
        ({"loss": {"name": "hinge", "gp_lambda": 10}}, "spec.loss", "gp_lambda is a wgan_gp"),
        ({"loss": {"name": "wgan_gp", "critic_steps": 0}}, "spec.loss.critic_steps", ""),
        ({"loss": "wgan"}, "spec.loss.name", ""),
        ({"train": {"ema_decay": 1.0}}, "spec.train.ema_decay", ""),
        ({"precision": "fp8"}, "spec.precision", ""),
    ],
)
def test_bad_loss_ema_and_precision_fields_are_named(extra: dict, path: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        validate_job_request({"kind": "train", "name": "x", "spec": {**RING, **extra}})
    assert message in paths(info.value)[path]


def test_sampling_spec_limits_seeds() -> None:
    assert SampleSpec.model_validate({"job_id": "a" * 32, "seeds": [1, 2]}).seeds == [1, 2]
    with pytest.raises(ValueError, match="at most"):
        SampleSpec.model_validate({"job_id": "a" * 32, "seeds": list(range(5000))})
    with pytest.raises(ValueError):
        SampleSpec.model_validate({"job_id": "a" * 32, "seeds": []})
