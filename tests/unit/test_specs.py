from typing import Any

import pytest

from shared.specs import LossSpec, SampleSpec, SpecError, TrainSpec, validate_job_request
from shared.specs.sample import MAX_SEED_IMAGES

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
    unknown = found["spec.train.batch_sise"]
    assert unknown == "unknown field `batch_sise`; did you mean `batch_size`?"


def test_a_field_of_several_kinds_is_one_problem_in_words_not_pydantic_tags() -> None:
    body = {"kind": "train", "name": "x",
            "spec": {"model": "mlp", "data": {"source": "toy:ring9"},
                     "train": {"steps": "10"}}}  # fmt: skip
    with pytest.raises(SpecError) as info:
        validate_job_request(body)
    assert [p["path"] for p in info.value.problems] == ["spec.data.source", "spec.train.steps"]
    source, steps = (p["message"] for p in info.value.problems)
    assert source.startswith("must be one of `toy:ring8`, `toy:grid25`, `toy:gauss1d`, `mnist`")
    assert source.endswith("got 'toy:ring9' (a string); did you mean `toy:ring8`?")
    assert steps == "Input should be a valid integer, got '10' (a string)"


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
    bulk = SampleSpec.model_validate({"job_id": "a" * 32, "seeds": list(range(MAX_SEED_IMAGES))})
    assert len(bulk.seeds or []) == MAX_SEED_IMAGES
    with pytest.raises(ValueError, match="at most"):
        SampleSpec.model_validate({"job_id": "a" * 32, "seeds": list(range(MAX_SEED_IMAGES + 1))})
    with pytest.raises(ValueError):
        SampleSpec.model_validate({"job_id": "a" * 32, "seeds": []})


@pytest.mark.parametrize("steps", ["10", True, 1000.0, None])
def test_numbers_are_not_coerced(steps: Any) -> None:
    body = {"kind": "train", "name": "n", "spec": {**RING, "train": {"steps": steps}}}
    with pytest.raises(SpecError) as raised:
        validate_job_request(body)
    assert [p["path"] for p in raised.value.problems] == ["spec.train.steps"]


@pytest.mark.parametrize(
    ("spec", "path", "message"),
    [
        ({"checkpoint_every": 1e19}, "spec.checkpoint_every", "valid integer"),
        ({"checkpoint_every": 101}, "spec.checkpoint_every", "more than train.steps (100)"),
        ({"sample_every": 500}, "spec.sample_every", "more than train.steps (100)"),
        ({"train": {"steps": 100, "lr": "0.1"}}, "spec.train.lr", "valid number"),
        ({"resources": {"preemptible": 1}}, "spec.resources.preemptible", "valid boolean"),
        ({"trian": {}}, "spec.trian", "did you mean `train`?"),
        ({"model": "mpl"}, "spec.model.family", "did you mean `mlp`?"),
        ({"data": {"source": "toy:ring8", "path": "/a\0b"}}, "spec.data.path", "NUL"),
    ],
)
def test_bad_values_are_named_with_the_reason(
    spec: dict[str, Any], path: str, message: str
) -> None:
    body = {"kind": "train", "name": "n", "spec": {**RING, "train": {"steps": 100}, **spec}}
    with pytest.raises(SpecError) as raised:
        validate_job_request(body)
    found = {p["path"]: p["message"] for p in raised.value.problems}
    assert message in found[path], found


def test_a_nul_in_the_name_is_refused_and_the_default_cadences_clip_to_short_runs() -> None:
    with pytest.raises(SpecError, match="name: must not contain a NUL"):
        validate_job_request({"kind": "train", "name": "a\0", "spec": RING})
    _, spec = validate_job_request(
        {"kind": "train", "name": "short", "spec": {**RING, "train": {"steps": 10}}}
    )
    assert spec.checkpoint_every == 500  # the default: the last step gets the only one


def test_an_address_space_bound_is_for_cpu_jobs() -> None:
    resources = {"devices": 1, "address_space_gib": 16}
    _, spec = validate_job_request(
        {"kind": "train", "name": "r", "spec": {**RING, "resources": resources}}
    )
    assert spec.resources.address_space_gib == 16
    with pytest.raises(SpecError) as refused:
        validate_job_request(
            {
                "kind": "train",
                "name": "r",
                "spec": {**RING, "resources": {**resources, "device_type": "cuda"}},
            }
        )
    assert refused.value.problems[0]["path"] == "spec.resources"
    assert "CUDA maps far more" in refused.value.problems[0]["message"]
