"""Successive halving as a pure function of the children's evaluations."""

from __future__ import annotations

from shared.sweeps.halving import Entrant, figure_of, judge_rung


def test_a_rung_waits_until_every_running_child_has_reached_it() -> None:
    children = [Entrant("a", 0, True, 20, 0.9), Entrant("b", 1, True, 10, 0.1)]
    assert judge_rung(20, "high_quality", 0.5, children, {}) is None
    # A child that has not started yet (scheduled, no evaluation) is waited for too.
    assert judge_rung(20, "high_quality", 0.5, [children[0], Entrant("c", 2, True)], {}) is None


def test_the_worst_half_is_stopped_with_the_reason() -> None:
    children = [
        Entrant("a", 0, True, 20, 0.62),
        Entrant("b", 1, True, 25, 0.41),
        Entrant("c", 2, True, 20, 0.8),
        Entrant("d", 3, True, 20, 0.1),
    ]
    verdict = judge_rung(20, "high_quality", 0.5, children, {}, "sweep s1")
    assert verdict is not None
    assert set(verdict.stops) == {"b", "d"}
    assert verdict.stops["b"] == (
        "stopped by sweep s1 at rung 20: high_quality 0.41, below the kept half (0.62+)"
    )
    assert verdict.judged == {"a": 0.62, "b": 0.41, "c": 0.8, "d": 0.1}


def test_lower_is_better_for_distances() -> None:
    children = [Entrant("a", 0, True, 20, 0.3), Entrant("b", 1, True, 20, 0.05)]
    verdict = judge_rung(20, "w1", 0.5, children, {})
    assert verdict is not None and list(verdict.stops) == ["a"]
    assert "w1 0.3, above the kept half (0.05 or less)" in verdict.stops["a"]


def test_a_later_wave_is_held_to_the_bar_of_the_earlier_ones() -> None:
    judged = {"a": 0.9, "b": 0.2}
    good, bad = Entrant("c", 2, True, 20, 0.95), Entrant("d", 3, True, 20, 0.1)
    assert judge_rung(20, "high_quality", 0.5, [good], judged).stops == {}  # type: ignore[union-attr]
    verdict = judge_rung(20, "high_quality", 0.5, [bad], {**judged, "c": 0.95})
    assert verdict is not None and list(verdict.stops) == ["d"]
    # Those judged before are not judged again, and the first child alone is kept.
    assert judge_rung(20, "high_quality", 0.5, [Entrant("a", 0, True, 40, 0.0)], judged) is None
    alone = judge_rung(20, "high_quality", 0.5, [Entrant("a", 0, True, 20, 0.0)], {})
    assert alone is not None and alone.stops == {}


def test_a_finished_child_counts_in_the_field_but_is_not_stopped() -> None:
    children = [Entrant("a", 0, False, 40, 0.1), Entrant("b", 1, True, 20, 0.5)]
    verdict = judge_rung(20, "high_quality", 0.5, children, {})
    assert verdict is not None and verdict.stops == {} and set(verdict.judged) == {"a", "b"}


def test_a_child_without_the_figure_ranks_last() -> None:
    children = [Entrant("a", 0, True, 20, None), Entrant("b", 1, True, 20, 0.0)]
    verdict = judge_rung(20, "high_quality", 0.5, children, {})
    assert verdict is not None and list(verdict.stops) == ["a"]
    assert figure_of({"step": 20, "high_quality": 0.5}, "high_quality") == (20, 0.5)
    assert figure_of({"step": 20, "high_quality": None}, "high_quality") == (20, None)
    assert figure_of(None, "w1") == (None, None)
