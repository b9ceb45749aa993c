"""Precision, recall, density and coverage (worker/gan/prdc.py) on cases with known answers:
a set against itself and against another draw of its distribution, disjoint sets, and a
generator that covers two of three clusters; and the interval over draws."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from worker.gan.classifier import nearest_neighbour_figures
from worker.gan.prdc import (
    RealSet,
    figures_over_draws,
    kth_neighbour_distance,
    prdc,
    t_quantile_975,
)

CENTRES = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 3.0]])


def clusters(count: int, seed: int, which: tuple[int, ...] = (0, 1, 2)) -> Tensor:
    """`count` points spread evenly over the chosen clusters (std 0.1)."""
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.tensor(which)[torch.arange(count) % len(which)]
    return CENTRES[chosen] + 0.1 * torch.randn(count, 2, generator=generator)


def test_a_set_against_itself_scores_one_everywhere() -> None:
    points = clusters(600, seed=1)
    figures = prdc(points, points)
    assert figures["precision"] == figures["recall"] == figures["coverage"] == 1.0
    # Each point lies in its own ball and those of the neighbours it is within reach of.
    assert figures["density"] >= 1.0


def test_two_draws_of_one_distribution_score_near_one() -> None:
    figures = prdc(clusters(1500, seed=1), clusters(1500, seed=2))
    assert figures["precision"] > 0.95
    assert figures["recall"] > 0.95
    assert figures["coverage"] > 0.95
    assert 0.9 < figures["density"] < 1.1


def test_disjoint_sets_score_zero() -> None:
    real = clusters(600, seed=1)
    fake = clusters(600, seed=2) + torch.tensor([50.0, 50.0])
    assert prdc(real, fake) == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_a_generator_on_two_of_three_clusters_covers_two_thirds() -> None:
    real = clusters(1500, seed=1)
    fake = clusters(1500, seed=2, which=(0, 1))
    figures = prdc(real, fake)
    assert figures["coverage"] == pytest.approx(2 / 3, abs=0.03)
    assert figures["recall"] == pytest.approx(2 / 3, abs=0.03)
    assert figures["precision"] > 0.95  # what it draws is real-looking
    # Density asks how many real balls hold each sample, not how many samples a cluster
    # gets: samples inside real clusters score about 1 however they are shared out.
    assert figures["density"] == pytest.approx(1.0, abs=0.1)


def test_off_data_samples_lower_precision_but_not_coverage() -> None:
    real = clusters(1500, seed=1)
    fake = clusters(1500, seed=2)
    fake[::4] = 20 + torch.randn(len(fake[::4]), 2)  # a quarter far from any data
    figures = prdc(real, fake)
    assert figures["precision"] == pytest.approx(0.75, abs=0.03)
    assert figures["coverage"] > 0.9


def test_the_figures_match_the_digit_scorers_feature_space_version() -> None:
    generator = torch.Generator().manual_seed(3)
    real, fake = torch.randn(400, 8, generator=generator), torch.randn(300, 8, generator=generator)
    ours = prdc(real, 1.3 * fake + 0.2)
    theirs = nearest_neighbour_figures(real, 1.3 * fake + 0.2)
    assert ours == pytest.approx(theirs)


def test_the_kth_neighbour_distance_leaves_the_point_itself_out() -> None:
    line = torch.arange(10.0).reshape(10, 1)
    assert kth_neighbour_distance(line, k=1).tolist() == [1.0] * 10
    assert kth_neighbour_distance(line, k=2)[0] == 2.0  # 0 -> 1, 2
    with pytest.raises(ValueError, match="need more than 5 points"):
        kth_neighbour_distance(line[:5], k=5)


def test_the_interval_over_draws_holds_its_mean_and_narrows_with_draws() -> None:
    real = RealSet.of(clusters(600, seed=1))
    draws = [clusters(600, seed=10 + i, which=(0, 1)) for i in range(8)]
    few, many = figures_over_draws(real, draws[:3]), figures_over_draws(real, draws)
    for name, estimate in many.items():
        assert estimate.low <= estimate.value <= estimate.high, name
        assert estimate.high - estimate.low <= few[name].high - few[name].low, name
    assert many["coverage"].high < 0.75  # two clusters of three, however the draws fall
    single = figures_over_draws(real, draws[:1])["coverage"]
    assert single.low == single.value == single.high


def test_t_quantiles() -> None:
    assert t_quantile_975(4) == pytest.approx(2.776)
    assert t_quantile_975(17) == pytest.approx(2.131)  # conservative between table entries
    assert t_quantile_975(1000) == pytest.approx(1.96)
