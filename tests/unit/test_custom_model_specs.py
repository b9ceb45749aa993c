"""`"model": {"family": "custom", ...}` specs (shared/specs/custom_model.py): what a request
must give, what it may not, each refusal naming its field."""

from __future__ import annotations

from typing import Any

import pytest

from shared.specs import SpecError, TrainSpec, validate_job_request
from shared.specs.custom_model import MAX_ARGS, MAX_ARGS_JSON_BYTES

CODE = "0123456789abcdef" * 4
CUSTOM = {
    "family": "custom",
    "code": CODE,
    "generator": "mygan.nets:Generator",
    "discriminator": "mygan.nets:Critic",
}


def problems(model: Any, data: dict[str, Any] | None = None) -> dict[str, str]:
    spec = {"model": model, "data": data or {"source": "toy:ring8"}}
    with pytest.raises(SpecError) as refused:
        validate_job_request({"kind": "train", "name": "x", "spec": spec})
    return {p["path"]: p["message"] for p in refused.value.problems}


def test_a_custom_model_takes_points_or_images_packing_and_args_of_each_network() -> None:
    args = {"generator_args": {"width": 64, "blocks": [2, 2]}, "discriminator_args": {"sn": True}}
    for data in ({"source": "toy:ring8"}, {"source": "mnist", "path": "/data/mnist"}):
        _, spec = validate_job_request(
            {
                "kind": "train",
                "name": "x",
                "spec": {"model": {**CUSTOM, **args, "pack": 2}, "data": data},
            }
        )
        assert isinstance(spec, TrainSpec) and spec.model.pack == 2
        assert spec.model.generator_args == {"width": 64, "blocks": [2, 2]}
        # It travels in every checkpoint as JSON: it must come back the same.
        assert TrainSpec.model_validate_json(spec.model_dump_json()) == spec


@pytest.mark.parametrize("missing", ["code", "generator", "discriminator"])
def test_a_custom_model_needs_its_bundle_and_both_classes(missing: str) -> None:
    model = {k: v for k, v in CUSTOM.items() if k != missing}
    assert "model family custom needs it" in problems(model)[f"spec.model.{missing}"]


@pytest.mark.parametrize(
    ("field", "value"), [("width", 64), ("depth", 2), ("generator_norm", "batch")]
)
def test_the_built_in_families_options_are_refused_by_name(field: str, value: Any) -> None:
    message = problems({**CUSTOM, field: value})[f"spec.model.{field}"]
    assert "a built-in family's option" in message


@pytest.mark.parametrize("family", ["mlp", "vae"])
def test_only_a_custom_model_takes_a_bundle(family: str) -> None:
    found = problems({"family": family, "code": CODE})
    assert found == {"spec.model.code": f"only model family custom takes it, not {family}"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("code", CODE.upper()),
        ("code", CODE[:-1]),
        ("generator", "mygan.nets.Generator"),
        ("generator", "mygan/nets:Generator"),
        ("discriminator", "mygan..nets:Critic"),
        ("discriminator", "nets:Critic:x"),
        ("generator", "m" * 200 + ":G"),
    ],
)
def test_malformed_ids_and_class_paths_are_refused_by_name(field: str, value: str) -> None:
    assert f"spec.model.{field}" in problems({**CUSTOM, field: value})


def test_args_are_keyword_arguments_within_bounds() -> None:
    reserved = problems({**CUSTOM, "generator_args": {"latent_dim": 3}})
    assert reserved == {
        "spec.model.generator_args.latent_dim": "ganforge passes it to the constructor itself"
    }
    reserved = problems({**CUSTOM, "discriminator_args": {"input_shape": [2]}})
    assert "spec.model.discriminator_args.input_shape" in reserved
    not_a_name = problems({**CUSTOM, "discriminator_args": {"not-a-name": 1}})
    assert "Python identifiers" in not_a_name["spec.model.discriminator_args"]
    too_many = {f"a{i}": 1 for i in range(MAX_ARGS + 1)}
    assert (
        f"at most {MAX_ARGS}"
        in problems({**CUSTOM, "generator_args": too_many})["spec.model.generator_args"]
    )
    too_big = {"table": "x" * MAX_ARGS_JSON_BYTES}
    assert (
        "bytes as JSON"
        in problems({**CUSTOM, "generator_args": too_big})["spec.model.generator_args"]
    )
    not_an_object = problems({**CUSTOM, "generator_args": [1, 2]})
    assert "spec.model.generator_args" in not_an_object
