"""How `ganforge rerun` edits a stored spec: each `--set PATH=VALUE`, then the cadences scaled
to a changed `train.steps` (a copy of a 10,000-step run asked for 100 steps would otherwise be
refused for checkpointing past its end)."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

import click


def apply_changes(spec: dict[str, Any], changes: Sequence[str]) -> dict[str, Any]:
    """A copy of `spec` with each "dotted.path=value" set; a value that parses as JSON is that
    JSON (3, 0.5, true, null, [1, 2], {"name": "hinge"}), anything else is the string."""
    changed = copy.deepcopy(spec)
    for change in changes:
        path, equals, raw = change.partition("=")
        keys = path.split(".")
        if not equals or not all(keys):
            raise click.BadParameter(f"{change!r} is not PATH=VALUE", param_hint="--set")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        parent = changed
        for depth, key in enumerate(keys[:-1]):
            parent = parent.setdefault(key, {})
            if not isinstance(parent, dict):
                where = ".".join(keys[: depth + 1])
                raise click.BadParameter(
                    f"{change!r}: {where} is {parent!r}, not an object", param_hint="--set"
                )
        parent[keys[-1]] = value
    return changed


# Spec fields counted in steps of the run: a rerun with other `train.steps` scales them.
CADENCES = ("checkpoint_every", "sample_every", "eval_every", "collapse_warmup")


def fit_cadences(old: dict[str, Any], spec: dict[str, Any], changes: Sequence[str]) -> list[str]:
    """Where `train.steps` changed, scale each cadence the spec gives (and `--set` does not)
    by the same factor, at least 1 and at most the new steps, in place; the lines saying so."""
    before = (old.get("train") or {}).get("steps")
    after = (spec.get("train") or {}).get("steps")
    if not isinstance(before, int) or not isinstance(after, int) or before == after:
        return []
    chosen = {change.partition("=")[0] for change in changes}
    said = []
    for name in CADENCES:
        value = spec.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or name in chosen:
            continue
        least = 0 if name == "collapse_warmup" else 1
        scaled = min(after, max(least, round(value * after / before)))
        if scaled != value:
            spec[name] = scaled
            said.append(f"{name} {value:,} -> {scaled:,}")
    if not said:
        return []
    return [f"train.steps {before:,} -> {after:,}, so {', '.join(said)} "
            "(scaled alike; --set them to choose)"]  # fmt: skip
