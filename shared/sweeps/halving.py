"""Successive halving over a sweep's children, as a pure function of what they reported.

At a rung (a step) the sweep waits until every child still running has an evaluation at or
past it, then ranks the children that arrived against every child judged at that rung
before (asynchronous halving: with `max_parallel` below the sweep's size, children reach a
rung in waves, and a later wave is held to the bar the earlier ones set). The best
`keep` share of all those judged, at least one, is kept; an arrival outside it is stopped.
A child that ended before it was judged counts in the field with its last evaluation, but
is not stopped: there is nothing left to stop. A child without the figure ranks last.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from shared.specs.sweep import HIGHER_IS_BETTER


@dataclass(frozen=True)
class Entrant:
    """A child as a rung sees it."""

    id: str
    index: int
    # Scheduled or running: it can still be stopped, and a rung waits for it.
    active: bool
    # Its latest evaluation's step and figure (None: none yet / the figure is missing).
    step: int | None = None
    value: float | None = None


@dataclass(frozen=True)
class Verdict:
    """What one rung decided: the figures newly judged (to record) and whom to stop, why."""

    rung: int
    judged: dict[str, float | None] = field(default_factory=dict)
    stops: dict[str, str] = field(default_factory=dict)


def judge_rung(
    rung: int,
    figure: str,
    keep: float,
    children: Sequence[Entrant],
    judged: Mapping[str, float | None],
    who: str = "the sweep",
) -> Verdict | None:
    """The verdict at `rung` given the children now and those `judged` there before (id ->
    figure); None while an active child has not reached the rung or none arrived."""
    unjudged = [c for c in children if c.id not in judged]
    if any(c.active and (c.step is None or c.step < rung) for c in unjudged):
        return None
    arrived = [c for c in unjudged if c.step is not None and c.step >= rung]
    if not arrived:
        return None
    field_ = {**judged, **{c.id: c.value for c in arrived}}
    order = {c.id: c.index for c in children}
    higher = HIGHER_IS_BETTER[figure]
    ranked = sorted(field_, key=lambda i: (_badness(field_[i], higher), order.get(i, 0), i))
    kept = max(1, math.ceil(keep * len(field_)))
    bar = field_[ranked[kept - 1]]
    share = "half" if keep == 0.5 else f"{keep:.0%}"
    stops = {}
    for child in arrived:
        if child.active and child.id not in ranked[:kept]:
            shown = "none" if child.value is None else f"{child.value:.3g}"
            side = "below" if higher else "above"
            limit = "none" if bar is None else f"{bar:.3g}{'+' if higher else ' or less'}"
            stops[child.id] = (
                f"stopped by {who} at rung {rung}: {figure} {shown}, "
                f"{side} the kept {share} ({limit})"
            )
    return Verdict(rung, {c.id: c.value for c in arrived}, stops)


def _badness(value: float | None, higher_is_better: bool) -> tuple[int, float]:
    if value is None:
        return (1, 0.0)
    return (0, -value if higher_is_better else value)


def figure_of(
    evaluation: Mapping[str, object] | None, figure: str
) -> tuple[int | None, float | None]:
    """(step, figure) of a job's latest evaluation (shared/jobs/reports.py writes it)."""
    if not evaluation:
        return None, None
    step, value = evaluation.get("step"), evaluation.get(figure)
    number = (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    )
    return (step if isinstance(step, int) else None), number
