"""The spec of a sweep (`SweepSpec`): a base training spec, the fields to vary over a grid
and/or random draws, how many children run at once, and the rule that stops the weak ones.

Only the sweep's own shape is checked here; each child is a whole `TrainSpec`, checked when
the sweep is expanded (shared/sweeps/expansion.py), so that a bad combination is refused
naming the child and its field rather than the sweep as a whole.
"""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Literal

from pydantic import Field, JsonValue, StrictFloat, StrictInt, field_validator, model_validator

from shared.specs.data import StrictModel

# The most children one sweep may have: more is a typo in a grid (or a job for a
# dedicated tuner), and every child is a row the scheduler reads each pass.
MAX_CHILDREN = 100
# A dotted path to a spec field: "train.lr", "loss.name".
_PATH = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$")

# The evaluation figures a halving rule may rank by (worker/gan/evaluation.py), with whether
# a higher value is better.
HIGHER_IS_BETTER: dict[str, bool] = {
    "high_quality": True,
    "modes_covered": True,
    "classes_covered": True,
    "points_coverage": True,
    "kl_from_uniform": False,
    "class_kl": False,
    "w1": False,
    "frechet_distance": False,
}
Figure = Literal[
    "high_quality",
    "modes_covered",
    "classes_covered",
    "points_coverage",
    "kl_from_uniform",
    "class_kl",
    "w1",
    "frechet_distance",
]


def _check_path(path: str) -> str:
    if not _PATH.match(path):
        raise ValueError(f"{path!r} is not a dotted spec path such as `train.lr`")
    return path


class Distribution(StrictModel):
    """One random field's distribution: exactly one of `uniform` [low, high], `log_uniform`
    [low, high] (both > 0; for learning rates) or `choice` (values drawn with equal odds)."""

    uniform: tuple[StrictFloat, StrictFloat] | None = None
    log_uniform: tuple[StrictFloat, StrictFloat] | None = None
    choice: Annotated[list[JsonValue], Field(min_length=1, max_length=MAX_CHILDREN)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Distribution:
        given = [n for n in ("uniform", "log_uniform", "choice") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of uniform, log_uniform or choice")
        bounds = self.uniform or self.log_uniform
        if bounds is not None and not bounds[0] <= bounds[1]:
            raise ValueError(f"{given[0]}: [low, high] with low <= high, got {list(bounds)}")
        if self.log_uniform is not None and self.log_uniform[0] <= 0:
            raise ValueError("log_uniform: both bounds must be > 0")
        return self


class RandomSpec(StrictModel):
    """`count` draws of `fields`, the same draws crossed with every grid point, reproducible
    from `seed`."""

    count: Annotated[StrictInt, Field(ge=0, le=MAX_CHILDREN)] = 0
    fields: dict[str, Distribution] = {}
    seed: Annotated[StrictInt, Field(ge=0, le=2**63 - 1)] = 0

    @field_validator("fields")
    @classmethod
    def _paths(cls, value: dict[str, Distribution]) -> dict[str, Distribution]:
        for path in value:
            _check_path(path)
        return value


class HalvingSpec(StrictModel):
    """Successive halving: at each rung (a step), the children whose `figure` is in the worst
    `1 - keep` share of those judged at that rung are stopped."""

    figure: Figure
    rungs: Annotated[list[Annotated[StrictInt, Field(ge=1)]], Field(min_length=1, max_length=20)]
    keep: Annotated[StrictFloat, Field(gt=0, lt=1)] = 0.5

    @field_validator("rungs")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        if any(b <= a for a, b in itertools.pairwise(value)):
            raise ValueError(f"rungs must increase, got {value}")
        return value


class StopSpec(StrictModel):
    """When the sweep stops a child early (its last checkpoint kept): `on_collapse` sets each
    child's `on_collapse` to "stop"; `halving` ranks them at rungs."""

    on_collapse: bool = False
    halving: HalvingSpec | None = None


class SweepSpec(StrictModel):
    """A job that runs `base` (a training spec) once per point of `grid` x `random` draws."""

    base: dict[str, JsonValue]
    grid: dict[str, Annotated[list[JsonValue], Field(min_length=1, max_length=MAX_CHILDREN)]] = {}
    random: RandomSpec = RandomSpec()
    max_parallel: Annotated[StrictInt, Field(ge=1, le=MAX_CHILDREN)] = 4
    stop: StopSpec = StopSpec()

    @field_validator("grid")
    @classmethod
    def _paths(cls, value: dict[str, list[JsonValue]]) -> dict[str, list[JsonValue]]:
        for path in value:
            _check_path(path)
        return value

    @model_validator(mode="after")
    def _fields_vary_once(self) -> SweepSpec:
        both = sorted(set(self.grid) & set(self.random.fields))
        if both:
            raise ValueError(f"random.fields: {', '.join(both)} is also in grid; vary it once")
        if self.random.count and not self.random.fields:
            raise ValueError("random.fields: name the fields to draw (count is given)")
        return self
