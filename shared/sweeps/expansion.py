"""A sweep's children: the base spec with each combination of the grid's values and the
random draws set at their dotted paths, each validated as a whole training spec.

The expansion is deterministic: the grid in the order its fields and values are given, the
draws from `random.seed`, so a rerun of a sweep runs the same children.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from shared.specs.errors import MAX_PROBLEMS, SpecError, problems_from
from shared.specs.request import check_cadences
from shared.specs.sweep import MAX_CHILDREN, Distribution, SweepSpec
from shared.specs.train import TrainSpec

# Spec fields that accept a bare name as shorthand for an object ("loss": "hinge"): a path
# through one ("loss.name") first turns the name into that object.
SHORTHANDS = {"loss": "name", "model": "family"}


@dataclass(frozen=True)
class Child:
    index: int
    # What this child sets, path -> value, in the grid's then the draws' order.
    values: dict[str, Any]
    spec: TrainSpec


def child_count(sweep: SweepSpec) -> int:
    """How many children the sweep has, computed without building them (a grid of five
    fields of 100 values would be 10^10)."""
    return math.prod(len(values) for values in sweep.grid.values()) * max(1, sweep.random.count)


def child_values(sweep: SweepSpec) -> list[dict[str, Any]]:
    """Each child's values: every grid point, crossed with the same `random.count` draws (so
    the grid's points are compared on equal draws)."""
    paths = list(sweep.grid)
    points = [
        dict(zip(paths, combo, strict=True)) for combo in itertools.product(*sweep.grid.values())
    ]
    rng = random.Random(sweep.random.seed)
    draws = [
        {path: draw(sweep.random.fields[path], rng) for path in sorted(sweep.random.fields)}
        for _ in range(sweep.random.count)
    ] or [{}]
    return [{**point, **drawn} for point in points for drawn in draws]


def draw(distribution: Distribution, rng: random.Random) -> Any:
    if distribution.uniform is not None:
        return rng.uniform(*distribution.uniform)
    if distribution.log_uniform is not None:
        low, high = distribution.log_uniform
        return math.exp(rng.uniform(math.log(low), math.log(high)))
    assert distribution.choice is not None
    return copy.deepcopy(rng.choice(distribution.choice))


def set_path(spec: dict[str, Any], path: str, value: Any) -> None:
    """Set `value` at dotted `path` of `spec` in place, creating objects on the way; raises
    ValueError where the path runs through a value that is not an object."""
    keys = path.split(".")
    node = spec
    for depth, key in enumerate(keys[:-1]):
        current = node.get(key)
        if current is None:
            current = node[key] = {}
        elif isinstance(current, str) and depth == 0 and key in SHORTHANDS:
            current = node[key] = {SHORTHANDS[key]: current}
        if not isinstance(current, dict):
            where = ".".join(keys[: depth + 1])
            raise ValueError(f"{where} is {current!r}, not an object")
        node = current
    node[keys[-1]] = copy.deepcopy(value)


def expand(sweep: SweepSpec) -> list[Child]:
    """The children, each a valid TrainSpec; SpecError naming every bad child by its index
    (`spec.children.<i>.<field>`) and the values that made it, or the cap when there are
    more than MAX_CHILDREN."""
    count = child_count(sweep)
    if count > MAX_CHILDREN:
        shape = " x ".join(
            [f"{len(v)} {path}" for path, v in sweep.grid.items()]
            + ([f"{sweep.random.count} random draws"] if sweep.random.count else [])
        )
        raise SpecError(
            [
                {
                    "path": "spec.grid",
                    "message": f"{shape} make {count} children; at most {MAX_CHILDREN}",
                }
            ]
        )
    children, problems = [], []
    for index, values in enumerate(child_values(sweep)):
        try:
            children.append(Child(index, values, _child_spec(sweep, index, values)))
        except SpecError as refused:
            problems += refused.problems
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise SpecError(problems[:MAX_PROBLEMS])
    return children


def _child_spec(sweep: SweepSpec, index: int, values: dict[str, Any]) -> TrainSpec:
    prefix = ("spec", "children", str(index))
    which = f" (child {index}: " + ", ".join(f"{p}={v!r}" for p, v in values.items()) + ")"
    raw = copy.deepcopy(dict(sweep.base))
    for path, value in values.items():
        try:
            set_path(raw, path, value)
        except ValueError as error:
            raise SpecError(
                [{"path": ".".join((*prefix, path)), "message": f"{error}{which}"}]
            ) from None
    if sweep.stop.on_collapse:
        raw["on_collapse"] = "stop"
    try:
        spec = TrainSpec.model_validate(raw)
        check_cadences(spec)
    except ValidationError as exc:
        problems = problems_from(exc, prefix=prefix, model=TrainSpec)
        raise SpecError([{**p, "message": p["message"] + which} for p in problems]) from None
    except SpecError as refused:
        raise SpecError(reprefixed(refused.problems, index, which)) from None
    halving = sweep.stop.halving
    if halving is not None and halving.rungs[-1] >= spec.train.steps:
        raise SpecError(
            [
                {
                    "path": "spec.stop.halving.rungs",
                    "message": f"rung {halving.rungs[-1]} is not before the end of child "
                    f"{index}'s run (train.steps {spec.train.steps}); a rung judges runs midway",
                }
            ]
        )
    return spec


def reprefixed(problems: list[dict[str, str]], index: int, which: str = "") -> list[dict[str, str]]:
    """A child's problems (paths `spec.<field>`) as the sweep's (`spec.children.<i>.<field>`)."""
    return [
        {
            "path": f"spec.children.{index}." + p["path"].removeprefix("spec."),
            "message": p["message"] + which,
        }
        for p in problems
    ]
