"""The collapse alarm fed recorded evaluation series (figures as the service measured them,
intervals computed from the per-mode counts as the evaluation does): it stays silent on the
healthy runs issue 23 found it warning about, warns about a real collapse at the first
evaluation after the warm-up that shows it, and its warnings end and begin again."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from worker.gan.collapse_alarm import AlarmEvent, CollapseWatch
from worker.gan.mode_coverage import kl_from_uniform, mode_intervals

SAMPLES = 2500  # what the service scores a toy run's generator on


def _evaluation(counts: list[int], spread: float = 1.0) -> dict[str, Any]:
    """The mode figures of 2,500 samples whose high-quality ones fall into modes as `counts`
    (worker/gan/evaluation.py's `mode_figures`, less the JSD)."""
    histogram = torch.tensor(counts, dtype=torch.float64)
    return {
        "modes_covered": sum(c > 0 for c in counts),
        "mode_count": len(counts),
        "high_quality": sum(counts) / SAMPLES,
        "mode_counts": counts,
        "kl_from_uniform": kl_from_uniform(histogram),
        "samples": SAMPLES,
        "high_quality_samples": sum(counts),
        **mode_intervals(histogram, SAMPLES),
        "spread": spread,
    }


def _even(modes: int, high_quality: float) -> list[int]:
    """A histogram of `high_quality` of the samples spread evenly over `modes` modes."""
    each = round(high_quality * SAMPLES / modes)
    return [each + (i % 3) - 1 for i in range(modes)]


def _run(series: list[tuple[int, dict[str, Any]]], warmup: int) -> list[AlarmEvent]:
    watch = CollapseWatch(warmup=warmup)
    return [event for step, metrics in series for event in watch.check(step, metrics)]


def _episodes(events: list[AlarmEvent]) -> list[tuple[str, int, int | None]]:
    """(kind, step began, step ended or None) of each warning, in the order they began."""
    episodes: list[list[Any]] = []
    for event in events:
        if event.ends:
            next(e for e in reversed(episodes) if e[0] == event.kind and e[2] is None)[2] = (
                event.step
            )
        else:
            episodes.append([event.kind, event.step, None])
    return [(kind, began, ended) for kind, began, ended in episodes]


# grid25 (examples/grid25.json, 30,000 steps) at step 2,500: 117 of 2,500 samples within 3 std
# of a mode, unevenly (KL 0.52), while the rest spread over the whole square; the old alarm
# called that crowding.
GRID25_EARLY = [13, 12, 12, 11, 11, 10, 8, 8, 7, 6, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]


def test_an_uneven_histogram_of_few_high_quality_samples_is_not_crowding() -> None:
    figures = _evaluation(GRID25_EARLY, spread=3.0)
    assert figures["kl_from_uniform"] == pytest.approx(0.52, abs=0.01)
    assert figures["high_quality_samples"] == 117
    # Within the recipe's warm-up (a quarter of 30,000 steps), and even had it ended: 20 of
    # 25 modes are covered, and the KL is not judged on 4.7% of the samples.
    assert _run([(2500, figures)], warmup=7500) == []
    assert _run([(2500, figures)], warmup=0) == []


# The README's first spec (a plain GAN, 2,000 steps, evaluated every 250) on ring8 seed 0:
# it never covers, ending at 1 of 8 modes with 3.9% of samples high quality.
PLAIN_GAN_RING8 = [
    (250, [0] * 8, 0.643),
    (500, [0] * 8, 0.440),
    (750, [0, 0, 0, 0, 0, 86, 0, 0], 0.475),
    (1000, [0] * 8, 0.252),
    (1250, [0] * 8, 0.315),
    (1500, [0] * 8, 0.448),
    (1750, [0] * 8, 0.428),
    (2000, [0, 0, 0, 0, 0, 0, 0, 97], 0.239),
]


def test_a_run_that_never_covers_is_warned_at_the_first_evaluation_after_its_warm_up() -> None:
    series = [(step, _evaluation(counts, spread)) for step, counts, spread in PLAIN_GAN_RING8]
    events = _run(series, warmup=500)  # a quarter of 2,000 steps: the default
    assert _episodes(events) == [("modes-coverage", 500, None)]
    assert events[0].message.startswith(
        "mode collapse at step 500: the run does not cover the data after its warm-up of 500 "
        "steps: 0/8 modes covered (95% interval 0-0); 0 of 2,500 samples high quality"
    )
    # Within the warm-up a run that has not yet covered is not judged.
    assert _run(series[:1], warmup=500) == []


def _ring8_run(collapsed_at: set[int], recovered_at: set[int]) -> list[tuple[int, dict[str, Any]]]:
    """A ring8 run that covers evenly from step 7,500, falls onto one mode at the steps in
    `collapsed_at` and is back on all eight from the steps in `recovered_at`."""
    series, collapsed = [], False
    for step in range(2500, 30_001, 2500):
        collapsed = (collapsed or step in collapsed_at) and step not in recovered_at
        if step < 7500:
            counts = [40, 35, 50, 20, 45, 60, 30, 45] if step == 2500 else _even(8, 0.54)
        else:
            counts = [2400] + [0] * 7 if collapsed else _even(8, 0.96)
        series.append((step, _evaluation(counts)))
    return series


def test_a_collapse_warning_ends_when_the_modes_come_back_and_begins_again_when_they_go() -> None:
    events = _run(_ring8_run({12_500, 22_500}, {17_500}), warmup=7500)
    assert _episodes(events) == [
        ("modes-drop", 12_500, 17_500),
        ("modes-kl", 12_500, 17_500),
        ("modes-drop", 22_500, None),
        ("modes-kl", 22_500, None),
    ]
    began = [e.message for e in events if e.step == 12_500]
    assert began == [
        "mode collapse at step 12500: 1/8 modes covered (95% interval 1-1), down from 8 at "
        "step 2,500",
        "mode collapse at step 12500: samples crowd into few modes (KL from uniform 2.08 (95% "
        "interval 2.08-2.08) > 0.5, up from at most 0.0034 at step 7,500; 2,400 of 2,500 "
        "samples high quality)",
    ]
    ended = [e for e in events if e.ends and e.step == 17_500]
    assert [e.message.split(":")[0] for e in ended] == [
        "the modes-drop warning of step 12,500 ended",
        "the modes-kl warning of step 12,500 ended",
    ]


def test_a_resumed_run_ends_the_warnings_an_earlier_attempt_may_have_left_open() -> None:
    series = _ring8_run(set(), set())
    fresh = CollapseWatch(warmup=7500)
    assert fresh.check(*series[5]) == [], "nothing to end in a run that started here"
    resumed = CollapseWatch(warmup=7500, resumed=True)
    # Each kind as soon as it is judged (a drop or a shrinking spread needs a best first).
    ends = resumed.check(*series[5]) + resumed.check(*series[6])
    assert {e.kind for e in ends} == {"modes-coverage", "modes-drop", "modes-kl", "spread"}
    assert all(e.ends for e in ends)
    assert resumed.check(*series[7]) == [], "each kind once"


def test_digit_classes_are_judged_like_modes() -> None:
    def classes(covered: int, kl: float) -> dict[str, Any]:
        return {
            "classes_covered": covered, "classes_covered_interval": [covered, covered],
            "class_kl": kl, "class_kl_interval": [kl * 0.8, kl * 1.2], "class_samples": 600,
        }  # fmt: skip

    watch = CollapseWatch(warmup=2500)
    assert watch.check(1000, classes(6, 0.9)) == [], "uneven digits early in the run"
    assert watch.check(2000, classes(10, 0.05)) == []
    assert watch.armed_at == 2000
    (drop,) = watch.check(3000, classes(7, 0.3))
    assert drop.kind == "classes-drop"
    assert drop.message == (
        "mode collapse at step 3000: 7/10 classes covered (95% interval 7-7), down from 10 at "
        "step 2,000"
    )
    events = watch.check(4000, classes(10, 0.8))
    assert [(e.kind, e.ends) for e in events] == [("classes-drop", True), ("classes-kl", False)]
    assert "class KL from the data's 0.8 (95% interval 0.64-0.96) > 0.5" in events[1].message


def test_after_the_warm_up_a_high_kl_is_warned_while_it_does_not_fall() -> None:
    def crowded(share_of_first: float) -> dict[str, Any]:
        """96% of samples high quality, `share_of_first` of them on mode 0, the rest even."""
        first = round(share_of_first * 2400)
        return _evaluation([first, *_even(7, (2400 - first) / SAMPLES)])

    falling = [(5000, crowded(0.7)), (7500, crowded(0.62)), (10_000, crowded(0.5))]
    kls = [metrics["kl_from_uniform"] for _, metrics in falling]
    assert kls[0] > kls[1] > 0.5 > kls[2]
    # Past the bound at the end of the warm-up, but falling: a run still evening out.
    assert _run(falling, warmup=7500) == []
    # The same figure with no trajectory behind it, or one that has not fallen, is warned.
    assert _episodes(_run(falling[1:], warmup=7500)) == [("modes-kl", 7500, 10_000)]
    steady = [(5000, crowded(0.62)), (7500, crowded(0.62)), (10_000, crowded(0.1))]
    assert _episodes(_run(steady, warmup=7500)) == [("modes-kl", 7500, 10_000)]
    rising = [(5000, crowded(0.62)), (7500, crowded(0.7))]
    assert _episodes(_run(rising, warmup=7500)) == [("modes-kl", 7500, None)]
