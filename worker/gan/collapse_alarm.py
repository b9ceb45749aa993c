"""The mode-collapse alarm: reads a run's evaluations in order and warns when diversity falls
(modes or classes dropped, samples crowding into few modes, the generated spread shrinking).

`evaluation.RunEvaluation` feeds it every evaluation; each warning goes to the job's warnings
and, with `on_collapse: stop`, stops the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worker.gan.classifier import CLASSES

Metrics = dict[str, Any]

# KL of the mode histogram from uniform past which samples crowd into a few modes: half the
# modes evenly hit is ln 2 = 0.69; the plain GAN with 97% of its samples in 2 of 8 modes that
# "covered" all 8 scored 1.2.
KL_ALARM = 0.5
# Modes covered falling this far below the best seen in the run (a fraction of all modes).
MODE_DROP_ALARM = 0.25
# The generated batch's spread falling below this fraction of the best seen.
SPREAD_ALARM = 0.1


@dataclass
class CollapseWatch:
    """Remembers the best figures of a run and says when diversity falls: each kind of
    warning is given once per run, naming the step and the numbers."""

    best_covered: dict[str, int] = field(default_factory=dict)
    best_spread: float = 0.0
    raised: set[str] = field(default_factory=set)

    def check(self, step: int, metrics: Metrics) -> list[str]:
        warnings = []
        for kind, count in (("modes", metrics.get("mode_count")), ("classes", CLASSES)):
            covered = metrics.get(f"{kind}_covered")
            if covered is None or not count:
                continue
            best = self.best_covered[kind] = max(self.best_covered.get(kind, 0), covered)
            if best - covered >= max(1, MODE_DROP_ALARM * count):
                warnings.append(
                    self._once(
                        kind,
                        f"mode collapse at step {step}: {covered}/{count} {kind} covered, down "
                        f"from {best}",
                    )
                )
        kl = metrics.get("kl_from_uniform")
        if kl is not None and kl > KL_ALARM:
            warnings.append(
                self._once(
                    "kl",
                    f"mode collapse at step {step}: samples crowd into few modes (KL from "
                    f"uniform {kl:.2f} > {KL_ALARM})",
                )
            )
        spread_now = metrics.get("spread")
        if spread_now is not None:
            if self.best_spread > 0 and spread_now < SPREAD_ALARM * self.best_spread:
                warnings.append(
                    self._once(
                        "spread",
                        f"mode collapse at step {step}: generated samples' spread {spread_now:.3g}"
                        f" fell below {SPREAD_ALARM:.0%} of its best {self.best_spread:.3g}",
                    )
                )
            self.best_spread = max(self.best_spread, spread_now)
        return [w for w in warnings if w]

    def _once(self, kind: str, message: str) -> str:
        if kind in self.raised:
            return ""
        self.raised.add(kind)
        return message
