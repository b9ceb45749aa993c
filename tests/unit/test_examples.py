"""The documented example specs (examples/*.json) are valid requests and train."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.quality import EXAMPLE_SETUPS
from shared.specs import TrainSpec, validate_job_request
from tests.unit.gan.gan_testing import RecordingHooks

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.json"))


def test_there_is_an_example_for_every_built_in_dataset() -> None:
    assert [path.stem for path in EXAMPLES] == ["gauss1d", "grid25", "mnist", "ring8"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_an_example_is_a_valid_request(path: Path) -> None:
    _, spec = validate_job_request(
        {"kind": "train", "name": path.stem, "spec": json.loads(path.read_text())}
    )
    assert isinstance(spec, TrainSpec)


@pytest.mark.parametrize("name", sorted(EXAMPLE_SETUPS))
def test_an_example_trains_a_few_steps(name: str) -> None:
    from worker.gan.train import train

    raw = EXAMPLE_SETUPS[name]
    spec = TrainSpec.model_validate(
        {**raw, "train": {**raw["train"], "steps": 4}, "checkpoint_every": 4, "sample_every": 4}
    )
    hooks = RecordingHooks()
    assert train(spec, hooks=hooks).step == 4
    assert hooks.evaluations, "the last step is evaluated"


def test_the_demo_trains_the_ring8_example() -> None:
    from cli import DEMO_SPEC

    example = json.loads((EXAMPLES[0].parent / "ring8.json").read_text())
    assert example == DEMO_SPEC
