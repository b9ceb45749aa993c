"""A sweep's expansion into children: grid x random draws, deterministic, capped, and every
child checked as a training spec, a bad one refused naming its index and field."""

from __future__ import annotations

import math
from typing import Any

import pytest
from flask.testing import FlaskClient

from shared.specs import SpecError, SweepSpec
from shared.sweeps.expansion import child_count, expand
from tests.helpers import RING_SPEC, auth


def sweep(**changes: Any) -> SweepSpec:
    body: dict[str, Any] = {
        "base": RING_SPEC,
        "grid": {"loss.name": ["non_saturating", "hinge"], "train.seed": [0, 1, 2]},
        **changes,
    }
    return SweepSpec.model_validate(body)


def test_the_grid_s_product_crossed_with_the_same_random_draws() -> None:
    spec = sweep(
        random={"count": 2, "fields": {"train.lr": {"log_uniform": [1e-4, 1e-3]}}, "seed": 7}
    )
    children = expand(spec)
    assert len(children) == child_count(spec) == 12
    assert [c.index for c in children] == list(range(12))
    pairs = {(c.spec.loss.name, c.spec.train.seed) for c in children}
    assert pairs == {(loss, seed) for loss in ("non_saturating", "hinge") for seed in (0, 1, 2)}
    lrs = [c.spec.train.lr for c in children]
    assert all(1e-4 <= lr <= 1e-3 for lr in lrs)
    assert len(set(lrs)) == 2, "every grid point gets the same two draws"
    assert lrs[:2] == lrs[2:4]
    # The base's other fields are kept.
    assert all(c.spec.train.steps == 40 and c.spec.model.width == 32 for c in children)


def test_the_expansion_is_deterministic_from_the_seed() -> None:
    def lrs(seed: int) -> list[float]:
        drawn = {"count": 3, "fields": {"train.lr": {"uniform": [1e-4, 1e-3]}}, "seed": seed}
        return [c.spec.train.lr for c in expand(sweep(grid={}, random=drawn))]

    assert lrs(1) == lrs(1)
    assert lrs(1) != lrs(2)
    assert len(lrs(1)) == 3


def test_a_path_through_a_shorthand_and_on_collapse_stop() -> None:
    base = {**RING_SPEC, "loss": "hinge"}
    children = expand(sweep(base=base, grid={"loss.r1_gamma": [0.1]}, stop={"on_collapse": True}))
    assert children[0].spec.loss.name == "hinge" and children[0].spec.loss.r1_gamma == 0.1
    assert children[0].spec.on_collapse == "stop"


def test_more_than_100_children_are_refused_before_they_are_built() -> None:
    grid = {f"x{i}": list(range(100)) for i in range(5)}  # 10^10 if built
    with pytest.raises(SpecError) as refused:
        expand(sweep(grid={"train.seed": list(range(51)), **{"loss.name": ["hinge", "hinge"]}}))
    assert refused.value.problems[0]["path"] == "spec.grid"
    assert "102 children; at most 100" in refused.value.problems[0]["message"]
    with pytest.raises(SpecError, match="at most 100"):
        expand(sweep(grid=grid))
    assert child_count(sweep(grid=grid)) == math.prod([100] * 5)


def test_a_bad_child_is_refused_naming_its_index_and_field(client: FlaskClient, alice: str) -> None:
    spec = {"base": RING_SPEC, "grid": {"train.seed": [0], "loss.name": ["hinge", "hinge_x"]}}
    response = client.post(
        "/api/v1/jobs", json={"kind": "sweep", "name": "s", "spec": spec}, headers=auth(alice)
    )
    assert response.status_code == 422, response.get_data(as_text=True)
    problem = response.get_json()
    assert problem["errors"][0]["path"] == "spec.children.1.loss.name"
    assert "hinge_x" in problem["errors"][0]["message"]
    assert "child 1" in problem["errors"][0]["message"]
    assert client.get("/api/v1/jobs", headers=auth(alice)).get_json()["jobs"] == []


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"grid": {"Train.seed": [1]}}, "spec.grid"),
        ({"random": {"count": 2, "fields": {"train.seed": {"uniform": [0, 1]}}}}, "spec"),
        ({"stop": {"halving": {"figure": "fid", "rungs": [10]}}}, "spec.stop.halving.figure"),
        ({"stop": {"halving": {"figure": "w1", "rungs": [20, 10]}}}, "spec.stop.halving.rungs"),
        ({"stop": {"halving": {"figure": "w1", "rungs": [40]}}}, "spec.stop.halving.rungs"),
        ({"max_parallel": 0}, "spec.max_parallel"),
    ],
)
def test_a_bad_sweep_is_a_422_naming_the_field(
    client: FlaskClient, alice: str, changes: dict[str, Any], path: str
) -> None:
    spec = {"base": RING_SPEC, "grid": {"train.seed": [0, 1]}, **changes}
    response = client.post(
        "/api/v1/jobs", json={"kind": "sweep", "name": "s", "spec": spec}, headers=auth(alice)
    )
    assert response.status_code == 422, response.get_data(as_text=True)
    assert any(e["path"].startswith(path) for e in response.get_json()["errors"]), (
        response.get_json()
    )
