"""The mode-collapse alarm: reads a run's evaluations in order and warns while diversity is
lost: modes (or digit classes) not covered, covered ones dropped, samples crowding into few
of them, the generated spread shrinking.

Evidence, not single numbers. Each figure it judges comes with its sample size and a 95%
bootstrap interval (worker/gan/mode_coverage.py); a warning begins only when the whole
interval is past its threshold and ends only when the whole interval is back on the good
side (in between, it stays as it was). KL is judged only on enough high-quality samples (at
least KL_MIN_HIGH_QUALITY of all samples, and KL_MIN_PER_CELL per mode): the histogram of a
few sharp samples says nothing of where the loose majority lies (grid25 at step 2,500 scored
KL 0.52 from 117 high-quality samples while 95% of its samples spread over every mode).

When it judges. The alarm arms once the run has shown it can cover (every mode covered by the
lower end of its interval, and the KL judged and below KL_ALARM), or at the end of the
warm-up (`TrainSpec.alarm_warmup`: declared by the recipe, else a quarter of the run),
whichever comes first. Armed, it warns when

- `<family>-drop`: the modes (classes) covered fall by MODE_DROP_ALARM of all of them from
  the run's best;
- `<family>-kl`: the KL passes KL_ALARM and is not falling (its interval above the last
  judged one's): the bound, and the run's own trajectory. Before the warm-up ends only a run
  that has shown an even cover is judged, so a KL past the bound is a rise from its best;
  after it a run still sharpening its modes unevenly is spared while its KL falls;
- `spread`: the generated spread (mean distance of 256 samples; a tenfold fall is far past
  its noise) falls below SPREAD_ALARM of its best.

Point data without known modes (uploads) has no mode histogram: there the alarm reads
`points_coverage`, the share of held-back real points with a generated point within their
k-NN ball (worker/gan/point_scores.py). From the end of the warm-up it warns (`points-coverage`)
when the whole interval is below POINTS_COVERAGE_FLOOR, and (`points-drop`) when it falls by
POINTS_DROP_ALARM from the run's best.

From the end of the warm-up it also warns when the run does not cover the data
(`<family>-coverage`: fewer than COVERAGE_FLOOR of the modes or classes covered), whether or
not it ever did; a run that covered and lost them hears of the drop instead.

Each warning names the evaluation it began at and, once the figures recover, the one it ended
at; the same kind can begin again later. `evaluation.RunEvaluation` feeds the watch every
evaluation and hands the events to the hooks (the job's warnings; with `on_collapse: stop`,
a warning that begins stops the run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worker.gan.classifier import CLASSES

Metrics = dict[str, Any]

# KL (nats) from uniform (classes: from the data's shares) past which samples crowd into a
# few modes: half the modes evenly hit is ln 2 = 0.69; the plain GAN with 97% of its samples
# in 2 of 8 modes that "covered" all 8 scored 1.2.
KL_ALARM = 0.5
# Modes covered falling this far below the best seen in the run (a fraction of all modes).
MODE_DROP_ALARM = 0.25
# The generated batch's spread falling below this fraction of the best seen.
SPREAD_ALARM = 0.1
# After the warm-up: fewer modes covered than this share of them is a run that does not cover.
COVERAGE_FLOOR = 0.5
# Point data: a generator drawing the data's own distribution covers about 1 - 2^-k of held-back
# points (0.97 at k = 5; 0.9 and up measured for one on all 3 clusters of an upload), one on 2
# of 3 clusters 0.62 (0.60-0.64): below this share of held-back points covered, part of the
# data is missing.
POINTS_COVERAGE_FLOOR = 0.75
# ... and coverage falling this far below its best seen in the run.
POINTS_DROP_ALARM = 0.2
# KL is judged only on a histogram of at least this share of all samples (high-quality ones
# for modes): past the warm-up the example recipes hold 29-40% of samples on their modes at
# worst (grid25 seed 1 at step 7,500: 29%, KL 0.38), and the plain GAN's crowding shows
# from 40% (ring8 seed 2: KL 1.08 at step 1,500) ...
KL_MIN_HIGH_QUALITY = 1 / 3
# ... and at least this many of them per mode or class: a fair histogram of n samples over K
# cells scores KL about (K - 1) / 2n by chance alone, 0.025 here.
KL_MIN_PER_CELL = 20


@dataclass(frozen=True)
class Figure:
    """An evaluation figure with its 95% interval (the value itself when none is stored)."""

    value: float
    low: float
    high: float

    @classmethod
    def read(cls, metrics: Metrics, key: str) -> Figure | None:
        value = metrics.get(key)
        if value is None:
            return None
        interval = metrics.get(f"{key}_interval") or [value, value]
        return cls(float(value), float(interval[0]), float(interval[1]))

    def text(self, form: str = ".3g", scale: float = 1.0, unit: str = "", then: str = "") -> str:
        """The figure as a warning says it: `<value><unit><then> (95% interval
        <low>-<high><unit>)`, each number `scale`d and formatted by `form`."""
        low, value, high = (format(scale * x, form) for x in (self.low, self.value, self.high))
        return f"{value}{unit}{then} (95% interval {low}-{high}{unit})"


@dataclass(frozen=True)
class Family:
    """One kind of diversity the evaluations measure: a toy mixture's modes, or digit
    classes (worker/gan/classifier.py)."""

    name: str  # "modes" or "classes"
    covered_key: str
    kl_key: str
    kl_name: str

    def count(self, metrics: Metrics) -> int | None:
        if self.name == "modes":
            count = metrics.get("mode_count")
            return int(count) if count else None
        return CLASSES

    def kl_samples(self, metrics: Metrics) -> tuple[int, float] | None:
        """The samples the KL is measured on, and their share of all samples; None when the
        evaluation does not say."""
        if self.name == "classes":
            samples = metrics.get("class_samples")
            return None if samples is None else (int(samples), 1.0)
        samples, good = metrics.get("samples"), metrics.get("high_quality_samples")
        if not samples or good is None:
            return None
        return int(good), good / samples

    def kl_judged(self, metrics: Metrics) -> bool:
        """Whether the KL rests on enough samples to be judged (see KL_MIN_HIGH_QUALITY)."""
        count, measured = self.count(metrics), self.kl_samples(metrics)
        if count is None or measured is None or metrics.get(self.kl_key) is None:
            return False
        samples, share = measured
        return share >= KL_MIN_HIGH_QUALITY and samples >= KL_MIN_PER_CELL * count


FAMILIES = (
    Family("modes", "modes_covered", "kl_from_uniform", "KL from uniform"),
    Family("classes", "classes_covered", "class_kl", "class KL from the data's"),
)


@dataclass
class Episode:
    """One warning: its kind, the step it began at, what it said, and the step it ended at
    (None while it holds)."""

    kind: str
    began: int
    message: str
    ended: int | None = None


@dataclass(frozen=True)
class AlarmEvent:
    """A warning beginning (`ends` False) or ending, at an evaluation's step."""

    kind: str
    step: int
    message: str
    ends: bool = False


@dataclass
class CollapseWatch:
    """Reads a run's evaluations in order (`check`) and says when a warning begins or ends.

    `warmup`: the step from which the alarm judges a run that has not yet shown it covers,
    and warns about one that does not cover (`TrainSpec.alarm_warmup`). `resumed`: the run
    went on from a checkpoint, so an earlier attempt may have left warnings open; each kind's
    first verdict that it does not hold is then given as an end too."""

    warmup: int = 0
    resumed: bool = False
    armed_at: int | None = None
    best_covered: dict[str, tuple[float, int]] = field(default_factory=dict)
    best_kl: dict[str, tuple[float, int]] = field(default_factory=dict)
    last_kl: dict[str, Figure] = field(default_factory=dict)  # the last judged KL
    best_spread: float = 0.0
    best_points_coverage: tuple[float, int] | None = None
    episodes: list[Episode] = field(default_factory=list)
    judged: set[str] = field(default_factory=set)  # kinds with a verdict so far

    def check(self, step: int, metrics: Metrics) -> list[AlarmEvent]:
        """Judge one evaluation: the warnings that begin or end at `step`."""
        families = [f for f in FAMILIES if f.count(metrics) and f.covered_key in metrics]
        if self.armed_at is None and (
            step >= self.warmup or any(self._shows_cover(f, metrics) for f in families)
        ):
            self.armed_at = step
        verdicts: dict[str, tuple[bool, str] | None] = {}
        for family in families:
            verdicts.update(self._judge_family(family, step, metrics))
        verdicts.update(self._judge_points(step, metrics))
        verdicts["spread"] = self._judge_spread(step, metrics)
        return [e for kind, verdict in verdicts.items() for e in self._apply(kind, step, verdict)]

    @property
    def open(self) -> list[Episode]:
        return [e for e in self.episodes if e.ended is None]

    def _shows_cover(self, family: Family, metrics: Metrics) -> bool:
        covered, kl = Figure.read(metrics, family.covered_key), Figure.read(metrics, family.kl_key)
        return (
            covered is not None
            and kl is not None
            and covered.low >= (family.count(metrics) or 0)
            and family.kl_judged(metrics)
            and kl.high < KL_ALARM
        )

    def _judge_family(
        self, family: Family, step: int, metrics: Metrics
    ) -> dict[str, tuple[bool, str] | None]:
        """Each of the family's warnings: (holds, why) when the figures decide it, None when
        they leave it as it was."""
        count = family.count(metrics) or 0
        covered = Figure.read(metrics, family.covered_key)
        assert covered is not None
        drop = self._drop(family, count, covered, step)
        verdicts = {
            # A run that covered and lost modes is told so by the drop alone.
            f"{family.name}-coverage": None
            if drop is not None and drop[0]
            else self._coverage(family, count, covered, step, metrics),
            f"{family.name}-drop": drop,
            f"{family.name}-kl": self._crowding(family, step, metrics),
        }
        best = self.best_covered.get(family.name)
        if best is None or covered.low > best[0]:
            self.best_covered[family.name] = (covered.low, step)
        return verdicts

    def _coverage(
        self, family: Family, count: int, covered: Figure, step: int, metrics: Metrics
    ) -> tuple[bool, str] | None:
        if step < self.warmup:
            return None
        floor = COVERAGE_FLOOR * count
        if covered.high < floor:
            return True, (
                f"mode collapse at step {step}: the run does not cover the data after its "
                f"warm-up of {self.warmup:,} steps: "
                f"{covered.text('.0f', then=f'/{count} {family.name} covered')}"
                f"{_out_of(metrics, family)}"
            )
        if covered.low >= floor:
            return False, f"{covered.value:.0f}/{count} {family.name} covered at step {step}"
        return None

    def _drop(
        self, family: Family, count: int, covered: Figure, step: int
    ) -> tuple[bool, str] | None:
        best = self.best_covered.get(family.name)
        if self.armed_at is None or best is None:
            return None
        limit = max(1.0, MODE_DROP_ALARM * count)
        if best[0] - covered.high >= limit:
            return True, (
                f"mode collapse at step {step}: "
                f"{covered.text('.0f', then=f'/{count} {family.name} covered')}, down from "
                f"{best[0]:.0f} at step {best[1]:,}"
            )
        if best[0] - covered.low < limit:
            return False, f"{covered.value:.0f}/{count} {family.name} covered at step {step}"
        return None

    def _crowding(self, family: Family, step: int, metrics: Metrics) -> tuple[bool, str] | None:
        kl = Figure.read(metrics, family.kl_key)
        if kl is None or not family.kl_judged(metrics):
            return None
        best, last = self.best_kl.get(family.name), self.last_kl.get(family.name)
        if best is None or kl.high < best[0]:
            self.best_kl[family.name] = (kl.high, step)
        self.last_kl[family.name] = kl
        if self.armed_at is None:
            return None
        if kl.high < KL_ALARM:
            return False, f"{family.kl_name} {kl.value:.3g} at step {step}"
        falling = last is not None and kl.high < last.low
        if kl.low <= KL_ALARM or falling:
            return None
        trend = "not falling since the last evaluation" if last is not None else "first judged"
        if best is not None and best[0] < KL_ALARM:
            trend = f"up from at most {best[0]:.2g} at step {best[1]:,}"
        return True, (
            f"mode collapse at step {step}: samples crowd into few {family.name} "
            f"({family.kl_name} {kl.text()} > {KL_ALARM}, {trend}{_out_of(metrics, family)})"
        )

    def _judge_points(self, step: int, metrics: Metrics) -> dict[str, tuple[bool, str] | None]:
        """Point data's coverage of held-back real points: too low after the warm-up, or
        fallen from its best."""
        coverage = Figure.read(metrics, "points_coverage")
        if coverage is None:
            return {}
        best = self.best_points_coverage
        if best is None or coverage.low > best[0]:
            self.best_points_coverage = (coverage.low, step)
        shown = coverage.text(".0%", then=" of held-back real points covered")
        held = metrics.get("points_held_out")
        out_of = f"; {held:,} held back" if held else ""
        verdicts: dict[str, tuple[bool, str] | None] = {
            "points-coverage": None,
            "points-drop": None,
        }
        if step >= self.warmup:
            if coverage.high < POINTS_COVERAGE_FLOOR:
                verdicts["points-coverage"] = (
                    True,
                    (
                        f"mode collapse at step {step}: the run does not cover the data after its "
                        f"warm-up of {self.warmup:,} steps: {shown}{out_of}"
                    ),
                )
            elif coverage.low >= POINTS_COVERAGE_FLOOR:
                verdicts["points-coverage"] = False, f"{shown} at step {step}"
        if self.armed_at is not None and best is not None:
            if best[0] - coverage.high >= POINTS_DROP_ALARM:
                verdicts["points-drop"] = (
                    True,
                    (
                        f"mode collapse at step {step}: {shown}, down from {best[0]:.0%} at step "
                        f"{best[1]:,}{out_of}"
                    ),
                )
            elif best[0] - coverage.low < POINTS_DROP_ALARM:
                verdicts["points-drop"] = False, f"{shown} at step {step}"
        return verdicts

    def _judge_spread(self, step: int, metrics: Metrics) -> tuple[bool, str] | None:
        spread = metrics.get("spread")
        if spread is None:
            return None
        best, self.best_spread = self.best_spread, max(self.best_spread, spread)
        if self.armed_at is None or best <= 0:
            return None
        if spread < SPREAD_ALARM * best:
            return True, (
                f"mode collapse at step {step}: generated samples' spread {spread:.3g} fell "
                f"below {SPREAD_ALARM:.0%} of its best {best:.3g}"
            )
        return False, f"spread {spread:.3g} at step {step}"

    def _apply(self, kind: str, step: int, verdict: tuple[bool, str] | None) -> list[AlarmEvent]:
        if verdict is None:
            return []
        holds, message = verdict
        current = next((e for e in self.open if e.kind == kind), None)
        first = kind not in self.judged
        self.judged.add(kind)
        if holds and current is None:
            self.episodes.append(Episode(kind, step, message))
            return [AlarmEvent(kind, step, message)]
        if not holds and current is not None:
            current.ended = step
            ending = f"the {kind} warning of step {current.began:,} ended: {message}"
            return [AlarmEvent(kind, step, ending, ends=True)]
        if not holds and first and self.resumed:
            # A resumed run's watch starts afresh: a warning an earlier attempt left open
            # ends here if it no longer holds (where none is open, this ends nothing).
            return [AlarmEvent(kind, step, f"no {kind} warning holds: {message}", ends=True)]
        return []


def _out_of(metrics: Metrics, family: Family) -> str:
    """The sample size behind a family's figures, for a warning's text."""
    if family.name == "classes":
        samples = metrics.get("class_samples")
        return f"; {samples:,} samples" if samples else ""
    samples, good = metrics.get("samples"), metrics.get("high_quality_samples")
    if not samples or good is None:
        return ""
    return f"; {good:,} of {samples:,} samples high quality"
