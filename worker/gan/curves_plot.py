"""A run's curves (`curves_png`): its losses and evaluation figures over steps, in named
panels with units, goal lines where a goal is known, and a mark where each warning fired.
Redrawn at every checkpoint (in worker/curves_process.py's child), so it lays itself out with
fixed margins rather than a layout pass.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from worker.gan.classifier import CLASSES
from worker.gan.mode_coverage import QUALITY_STDS
from worker.gan.plots import DPI, SIGMA, figure_png


@dataclass(frozen=True)
class Measure:
    """One evaluation figure drawn as a curve: its panel title, y-axis name (with units),
    scale, whether it counts, and its goal (a function of the evaluation record: value and
    name) when one is known."""

    title: str
    unit: str
    scale: float = 1.0
    counts: bool = False
    goal: Callable[[dict[str, Any]], tuple[float, str] | None] | None = None


def _all_modes(evaluation: dict[str, Any]) -> tuple[float, str] | None:
    count = evaluation.get("mode_count")
    return (count, f"goal: all {count} modes") if _is_number(count) else None


def _high_quality_goal(evaluation: dict[str, Any]) -> tuple[float, str] | None:
    """What real data scores: the mass of a Gaussian within 3 std of its centre (98.9% in 2-D,
    99.7% on a line, where a run reports W1)."""
    if "w1" in evaluation:
        share = math.erf(QUALITY_STDS / math.sqrt(2))
    else:
        share = 1 - math.exp(-(QUALITY_STDS**2) / 2)
    return 100 * share, f"real data scores {100 * share:.1f}%"


# Goals from the README's quality section: KL of the modes from uniform < 0.02 (the example
# recipes), class KL < 0.05 (MNIST), and W1 < 0.05 for a good gauss1d run.
MODE_KL_GOAL, CLASS_KL_GOAL, W1_GOAL = 0.02, 0.05, 0.05

# Evaluation figures drawn as curves, in this order, when a run has them.
CURVE_METRICS: dict[str, Measure] = {
    "high_quality": Measure("high-quality samples", f"% within 3{SIGMA} of a mode centre", 100,
                           goal=_high_quality_goal),
    "modes_covered": Measure("modes covered", "modes (high-quality sample)", counts=True,
                            goal=_all_modes),
    "kl_from_uniform": Measure("mode balance: KL of the mode histogram from uniform",
                              "KL (nats)", goal=lambda e: (MODE_KL_GOAL, f"goal < {MODE_KL_GOAL}")),
    "w1": Measure("W1 distance to the data", "W1 (data units)",
                 goal=lambda e: (W1_GOAL, f"good run < {W1_GOAL}")),
    "classes_covered": Measure("digit classes covered", "classes (confident sample)", counts=True,
                              goal=lambda e: (CLASSES, f"goal: all {CLASSES} classes")),
    "class_kl": Measure("class balance: KL of the class histogram from the data's", "KL (nats)",
                       goal=lambda e: (CLASS_KL_GOAL, f"goal < {CLASS_KL_GOAL}")),
    "frechet_distance": Measure("Fréchet distance to the data", "distance (classifier features)"),
    "spread": Measure("spread of samples", "mean pairwise distance (data units)"),
}  # fmt: skip
# Mode figures mean nothing for data of one mode (gauss1d): no panel for them.
MODE_ONLY = ("modes_covered", "kl_from_uniform")

# Progress statistics grouped in panels, in this order: (title, y-axis name, ((key, name), ...)).
# The penalty has its own panel (its scale is not the scores'), drawn only when it is not 0.
PROGRESS_PANELS = (
    ("losses", "loss (batch mean)", (
        ("Loss/D/loss", "discriminator"), ("Loss/G/loss", "generator"),
        ("Loss/VAE/elbo", "ELBO"), ("Loss/VAE/recon", "reconstruction"),
        ("Loss/VAE/kl", "KL to the prior"),
        ("Loss/invert/loss", "inversion loss"), ("Loss/invert/objective", "inversion objective"),
    )),
    ("discriminator scores", "D(x): logit or critic value", (
        ("Loss/scores/real", "on real data"), ("Loss/scores/fake", "on generated samples"),
    )),
    ("gradient penalty on D (R1 or WGAN-GP)", "penalty before its weight", (
        ("Loss/D/reg", "penalty"),
    )),
)  # fmt: skip
MAX_CURVE_PANELS = 6
# Warnings listed under the curves (each also a numbered line on every panel); more are counted.
MAX_LISTED_WARNINGS = 4
WARNING_COLOUR = "#b2182b"
GOAL_COLOUR = "#4d9221"
# The figure's layout in inches: a panel's height, the room above and below the panels, and a
# line of the warnings' list.
PANEL_HEIGHT, CURVES_TOP, CURVES_BOTTOM, WARNING_LINE = 3.0, 0.3, 0.5, 0.2


@dataclass
class _Panel:
    """One panel of curves: its title, y-axis name, lines (name, steps, values), whether its
    values count (integer ticks), its goal line (value, name), y bounds, and whether its lines
    need a legend."""

    title: str
    unit: str
    lines: list[tuple[str, list[int], list[float]]]
    counts: bool = False
    goal: tuple[float, str] | None = None
    bounds: tuple[float | None, float | None] = (None, None)
    legend: bool = field(default=False)
    rising: bool = False  # its goal is reached from below


def curves_png(
    records: list[dict[str, Any]], warnings: Sequence[dict[str, Any]] | None = None
) -> bytes | None:
    """Loss and metric curves over steps from a run's metrics.jsonl records (progress lines
    and `eval` lines), with the run's `warnings` (`{"step", "message"}` each, as on the job)
    marked where they fired; None when there is nothing to draw yet."""
    figure = curves_figure(records, warnings)
    return None if figure is None else figure_png(figure, fit=False)


def curves_figure(
    records: list[dict[str, Any]], warnings: Sequence[dict[str, Any]] | None = None
) -> Any:
    """`curves_png`'s matplotlib figure, or None (the caller closes it)."""
    progress = [r for r in records if "eval" not in r]
    evaluations = [(r["step"], r["eval"]) for r in records if isinstance(r.get("eval"), dict)]
    panels: list[_Panel] = []
    for title, unit, names in PROGRESS_PANELS:
        lines = [_series(progress, key, name) for key, name in names]
        lines = [line for line in lines if line[1] and any(v != 0 for v in line[2])]
        if lines:
            panels.append(_Panel(title, unit, lines, legend=len(lines) > 1))
    latest = evaluations[-1][1] if evaluations else {}
    one_mode = latest.get("mode_count") == 1 or "w1" in latest
    for name, measure in CURVE_METRICS.items():
        if one_mode and name in MODE_ONLY:
            continue
        kept = [(step, e[name]) for step, e in evaluations if _is_number(e.get(name))]
        if not kept:
            continue
        values = [measure.scale * float(v) for _, v in kept]
        goal = measure.goal(latest) if measure.goal else None
        top = goal[0] + 0.5 if measure.counts and goal else None
        if measure.scale == 100:  # a percentage
            top = 101.0
        panel = _Panel(measure.title, measure.unit, [(name, [s for s, _ in kept], values)],
                       counts=measure.counts, goal=goal, bounds=(0.0, top),
                       rising=measure.counts or measure.scale == 100)  # fmt: skip
        panels.append(panel)
    panels = panels[:MAX_CURVE_PANELS]
    if not panels:
        return None
    marks = sorted(
        (int(w["step"]), str(w.get("message", ""))) for w in warnings or () if "step" in w
    )
    columns = 2 if len(panels) > 1 else 1
    rows = -(-len(panels) // columns)
    listed = min(len(marks), MAX_LISTED_WARNINGS) + (len(marks) > MAX_LISTED_WARNINGS)
    notes = WARNING_LINE * (listed + 1.5) if marks else 0.0
    height = PANEL_HEIGHT * rows + notes
    # Fixed margins, fitting every panel's title, step axis, tick labels and y-axis name:
    # curves are redrawn at each checkpoint of a running job, and laying them out anew costs
    # a draw of its own.
    figure, grid = plt.subplots(
        rows,
        columns,
        figsize=(6 * columns, height),
        dpi=DPI,
        squeeze=False,
        gridspec_kw={"left": 0.15 / columns, "right": 0.98,
                     "bottom": (CURVES_BOTTOM + notes) / height, "top": 1 - CURVES_TOP / height,
                     "wspace": 0.3, "hspace": 0.45},
    )  # fmt: skip
    for index, (axes, panel) in enumerate(zip(grid.flat, panels, strict=False)):
        _draw_panel(axes, panel, marks, numbered=index < columns)
    for axes in list(grid.flat)[len(panels) :]:
        axes.set_visible(False)
    if marks:
        listed_lines = [
            textwrap.shorten(f"{index}: step {step:,}: {message}", 150, placeholder=" ...")
            for index, (step, message) in enumerate(marks[:MAX_LISTED_WARNINGS], start=1)
        ]
        if len(marks) > MAX_LISTED_WARNINGS:
            listed_lines.append(f"and {len(marks) - MAX_LISTED_WARNINGS} more (the job's warnings)")
        figure.text(
            0.01, (notes - 0.05) / height,
            "\n".join(["warnings (the red dotted lines on every panel, numbered on the top row):",
                       *listed_lines]),
            ha="left", va="top", fontsize=8, color=WARNING_COLOUR, linespacing=1.4,
        )  # fmt: skip
    return figure


def _draw_panel(axes: Any, panel: _Panel, marks: list[tuple[int, str]], numbered: bool) -> None:
    for name, steps, values in panel.lines:
        label = name if panel.legend else None
        axes.plot(steps, values, lw=1, marker="." if len(steps) < 30 else None, label=label)
    if panel.goal is not None:  # named on the line itself: a legend costs a layout search
        value, name = panel.goal
        axes.axhline(value, color=GOAL_COLOUR, ls="--", lw=1)
        # Named at the left end, where a run's curve starts far from its goal: beneath a
        # goal reached from below (all modes, real data's share), above one to stay under.
        axes.text(
            0.01, value, name, transform=axes.get_yaxis_transform(), color=GOAL_COLOUR,
            fontsize=7, ha="left", va="top" if panel.rising else "bottom",
        )  # fmt: skip
    if marks:  # one artist for every warning's line; their numbers on the top row only
        steps = [step for step, _ in marks]
        axes.vlines(steps, 0, 1, transform=axes.get_xaxis_transform(), colors=WARNING_COLOUR,
                    linestyles=":", lw=1.2)  # fmt: skip
        if numbered:
            for index, step in enumerate(steps, start=1):
                axes.text(
                    step, 1.0, f" {index}", transform=axes.get_xaxis_transform(),
                    color=WARNING_COLOUR, fontsize=7, ha="left", va="top",
                )  # fmt: skip
    low, high = panel.bounds
    if low is not None or high is not None:
        axes.set_ylim(bottom=low, top=high)
    if panel.counts:
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_title(panel.title, fontsize=10, y=1.0)  # a fixed place: no overlap search
    axes.set_xlabel("step")
    axes.set_ylabel(panel.unit, fontsize=9)
    axes.grid(alpha=0.3)
    if panel.legend:
        axes.legend(fontsize=8, loc="best")


def _series(
    records: list[dict[str, Any]], key: str, name: str
) -> tuple[str, list[int], list[float]]:
    kept = [(r["step"], float(r[key])) for r in records if _is_number(r.get(key))]
    return name, [s for s, _ in kept], [v for _, v in kept]


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
