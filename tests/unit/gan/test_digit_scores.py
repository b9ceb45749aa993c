"""Class-based figures for MNIST with known answers: the classifier reaches >= 97% on held-out
digits, real digits score all 10 classes with precision and recall near 1, one repeated
digit scores one class and fires the alarm, and noise scores no recall and no coverage."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import MNIST_DIR
from tests.unit.gan.gan_testing import RecordingHooks, mnist_spec
from worker.gan.classifier import (
    EVAL_IMAGES,
    DigitScorer,
    frechet_distance,
    nearest_neighbour_figures,
)
from worker.gan.collapse_alarm import CollapseWatch
from worker.gan.evaluation import FINAL_SAMPLES
from worker.gan.mnist_files import load_mnist_labelled


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    labelled = load_mnist_labelled(MNIST_DIR)
    assert labelled is not None, "the repo's slice has its labels"
    return labelled


@pytest.fixture(scope="module")
def scorer(digits: tuple[torch.Tensor, torch.Tensor]) -> DigitScorer:
    return DigitScorer(*digits, RecordingHooks().cached)


def _unheld(scorer: DigitScorer, digits: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Real digits the scorer's reference set does not hold, in [-1, 1]."""
    images, _ = digits
    reference = set(scorer.held_out.tolist())
    others = torch.tensor([i for i in range(len(images)) if i not in reference])
    return images[others[:EVAL_IMAGES]].float().unsqueeze(1) / 127.5 - 1


@pytest.mark.slow  # trains for seconds: in `make test`, not `make test-fast`
def test_the_classifier_reaches_97_percent_on_held_out_digits(scorer: DigitScorer) -> None:
    assert scorer.accuracy >= 0.97


@pytest.mark.slow  # trains for seconds: in `make test`, not `make test-fast`
def test_real_digits_score_every_class_close_to_the_data(
    scorer: DigitScorer, digits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    figures = scorer.figures(_unheld(scorer, digits))
    assert figures["classes_covered"] == 10
    assert figures["class_kl"] < 0.05
    assert figures["precision"] > 0.9 and figures["recall"] > 0.9
    assert figures["coverage"] > 0.9 and 0.8 < figures["density"] < 1.2
    # Ten thousand images (a run's final evaluation): classes from all of them, in batches;
    # the feature figures from the first EVAL_IMAGES, as before.
    many = _unheld(scorer, digits).repeat(17, 1, 1, 1)[:FINAL_SAMPLES]
    final = scorer.figures(many)
    assert final["class_samples"] == FINAL_SAMPLES and final["feature_samples"] == EVAL_IMAGES
    assert final["frechet_distance"] == pytest.approx(figures["frechet_distance"])
    low, high = final["class_kl_interval"]
    assert high - low < figures["class_kl_interval"][1] - figures["class_kl_interval"][0]
    noise = scorer.figures(torch.rand(EVAL_IMAGES, 1, 28, 28) * 2 - 1)
    assert noise["recall"] < 0.05 and noise["coverage"] < 0.05
    assert noise["frechet_distance"] > 20 * figures["frechet_distance"]


@pytest.mark.slow  # trains for seconds: in `make test`, not `make test-fast`
def test_one_repeated_digit_scores_one_class_and_fires_the_alarm(
    scorer: DigitScorer, digits: tuple[torch.Tensor, torch.Tensor]
) -> None:
    one = _unheld(scorer, digits)[:1].repeat(EVAL_IMAGES, 1, 1, 1)
    figures = scorer.figures(one)
    assert figures["classes_covered"] == 1 and figures["class_kl"] > 2.0
    assert figures["class_samples"] == EVAL_IMAGES
    assert figures["classes_covered_interval"] == [1, 1]
    low, high = figures["class_kl_interval"]
    assert low <= figures["class_kl"] <= high
    watch = CollapseWatch()
    assert watch.check(10, {"classes_covered": 10}) == []
    (warning,) = watch.check(20, {"classes_covered": figures["classes_covered"]})
    assert warning.kind == "classes-drop"
    assert "1/10 classes covered (95% interval 1-1), down from 10 at step 10" in warning.message


def test_frechet_distance_and_neighbours_on_known_gaussians() -> None:
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 3, generator=generator)
    b = torch.randn(4000, 3, generator=generator) + torch.tensor([2.0, 0.0, 0.0])
    # Equal covariances: the distance is the squared gap of the means, 4.
    assert frechet_distance(a, b) == pytest.approx(4.0, abs=0.3)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    same = nearest_neighbour_figures(a[:500], a[500:1000])
    assert same["precision"] > 0.9 and same["recall"] > 0.9


@pytest.mark.slow  # trains for seconds: in `make test`, not `make test-fast`
def test_an_mnist_run_reports_the_class_figures() -> None:
    from worker.gan.train import train

    hooks = RecordingHooks()
    train(mnist_spec(), hooks=hooks)
    _, metrics = hooks.evaluations[-1]
    assert {"classes_covered", "class_kl", "precision", "recall", "frechet_distance"} <= set(
        metrics
    )
    assert metrics["classifier_accuracy"] >= 0.97
