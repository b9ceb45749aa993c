"""Quality metrics with known answers: real samples score every mode with ~100% high quality,
a one-mode generator scores one mode and fires the alarm, uniform noise scores near chance,
and the 1-D distance of two known Gaussians matches its closed form."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import Tensor, nn

from shared.specs import TrainSpec
from tests.unit.gan.gan_testing import RecordingHooks, ring_spec
from worker.gan.collapse_alarm import KL_ALARM, CollapseWatch
from worker.gan.evaluation import (
    EVAL_SAMPLES,
    FINAL_SAMPLES,
    EvalInput,
    RunEvaluation,
    evaluate,
    mode_figures,
    score,
)
from worker.gan.line_distance import w1_between
from worker.gan.toydata import toy_distribution


def _spec(source: str) -> TrainSpec:
    return TrainSpec.model_validate({"model": "mlp", "data": {"source": source}})


def _figures(source: str, samples: Tensor) -> dict:
    return mode_figures(EvalInput(_spec(source), samples.double(), toy_distribution(source)))


@pytest.mark.parametrize(("source", "modes"), [("toy:ring8", 8), ("toy:grid25", 25)])
def test_real_samples_cover_every_mode_evenly(source: str, modes: int) -> None:
    real = toy_distribution(source).sample(EVAL_SAMPLES, torch.Generator().manual_seed(1))
    figures = _figures(source, real)
    assert figures["modes_covered"] == figures["mode_count"] == modes
    # A 2-D Gaussian puts 1 - exp(-9/2) = 98.9% of its mass within 3 std.
    assert figures["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.006)
    assert figures["kl_from_uniform"] < 0.02 and figures["jsd_from_uniform"] < 0.005
    assert sum(figures["mode_counts"]) == pytest.approx(figures["high_quality"] * EVAL_SAMPLES)


def test_a_one_mode_generator_scores_one_mode_and_fires_the_alarm() -> None:
    ring = toy_distribution("toy:ring8")
    one_mode = ring.modes[3] + ring.std * torch.randn(EVAL_SAMPLES, 2)
    figures = _figures("toy:ring8", one_mode)
    assert figures["modes_covered"] == 1
    assert figures["kl_from_uniform"] == pytest.approx(math.log(8), abs=1e-6)
    assert figures["modes_covered_interval"] == [1, 1] and figures["samples"] == EVAL_SAMPLES
    # A run that covered every mode evenly, then fell onto one: warned within its warm-up.
    real = toy_distribution("toy:ring8").sample(EVAL_SAMPLES, torch.Generator().manual_seed(1))
    watch = CollapseWatch(warmup=1000)
    assert watch.check(100, _figures("toy:ring8", real)) == []
    assert watch.armed_at == 100, "a run that has shown it covers is judged from then on"
    warnings = watch.check(200, figures)
    assert {w.kind for w in warnings} == {"modes-drop", "modes-kl"}
    assert all("step 200" in w.message and not w.ends for w in warnings)
    messages = [w.message for w in warnings]
    assert any(
        "1/8 modes covered (95% interval 1-1), down from 8 at step 100" in m for m in messages
    )
    assert any(f"> {KL_ALARM}" in w.message for w in warnings)
    assert watch.check(300, figures) == [], "a warning that holds is given once"


def test_uniform_noise_scores_near_chance() -> None:
    noise = torch.rand(EVAL_SAMPLES, 2, generator=torch.Generator().manual_seed(2)) * 3 - 1.5
    figures = _figures("toy:ring8", noise)
    # 8 discs of radius 0.03 in a 3 x 3 square: 0.25% of it.
    assert figures["high_quality"] < 0.01


def test_w1_matches_the_closed_form_for_known_gaussians() -> None:
    generator = torch.Generator().manual_seed(3)
    a = torch.randn(200_000, generator=generator)
    b = torch.randn(200_000, generator=generator)
    assert w1_between(a, b + 1.0) == pytest.approx(1.0, abs=0.01)  # a shift: its size
    # Same mean, std 1 vs 2: (2 - 1) * E|Z| = sqrt(2 / pi).
    assert w1_between(a, 2 * b) == pytest.approx(math.sqrt(2 / math.pi), abs=0.01)
    assert w1_between(a, a) == 0.0
    # Different sample sizes are fine (the quantile breaks of both are used).
    assert w1_between(a[:1000], b + 1.0) == pytest.approx(1.0, abs=0.1)


class _Constant(nn.Module):
    """A 'generator' that ignores z and always outputs one point: total collapse."""

    def __init__(self, point: Tensor) -> None:
        super().__init__()
        self.point = nn.Parameter(point, requires_grad=False)

    def forward(self, z: Tensor) -> Tensor:
        return self.point.expand(len(z), -1)


def test_a_collapsed_generator_is_warned_about_and_can_stop_the_run() -> None:
    spec = ring_spec(on_collapse="stop")
    hooks = RecordingHooks()
    evaluation = RunEvaluation(spec, hooks, torch.device("cpu"))
    ring = toy_distribution("toy:ring8")
    stuck = _Constant(ring.modes[0])
    metrics = evaluation(10, stuck)
    assert metrics["modes_covered"] == 1 and metrics["spread"] == 0.0
    assert hooks.evaluations == [(10, metrics)]
    assert hooks.warnings and all(stop for _, stop in hooks.warnings)
    assert "mode collapse at step 10" in hooks.warnings[0][0]


class _EveryMode(nn.Module):
    """A 'generator' that puts its samples on ring8's centres in turn: every mode, evenly."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("modes", toy_distribution("toy:ring8").modes)

    def forward(self, z: Tensor) -> Tensor:
        return self.modes[torch.arange(len(z)) % len(self.modes)]


def test_a_resumed_run_ends_what_an_earlier_attempt_may_have_left_open() -> None:
    spec = ring_spec()  # evaluated every 15 steps, warm-up 8
    fresh, resumed = RecordingHooks(), RecordingHooks()
    RunEvaluation(spec, fresh, _CPU)(15, _EveryMode())
    assert fresh.warning_events == []
    # A first evaluation past the first step evaluated follows a resume: each kind that does
    # not hold is ended (the job's warning of that kind, if an earlier attempt left one open).
    RunEvaluation(spec, resumed, _CPU)(30, _EveryMode())
    assert {(kind, began) for kind, began, _ in resumed.warning_events} == {
        ("modes-coverage", False),
        ("modes-kl", False),
    }


def test_the_1d_source_gets_w1_and_images_get_only_the_spread() -> None:
    line = _spec("toy:gauss1d")
    shifted = _Constant(torch.tensor([3.5]))
    metrics = evaluate(line, shifted, torch.zeros(100, 4), torch.device("cpu"))
    # E|X - 3.5| for X ~ N(3, 0.5²) = 0.5 E|Z - 1| = 0.5 (2 φ(1) + 2 Φ(1) - 1).
    phi, cdf = math.exp(-0.5) / math.sqrt(2 * math.pi), 0.5 * (1 + math.erf(1 / math.sqrt(2)))
    assert metrics["w1"] == pytest.approx(0.5 * (2 * phi + 2 * cdf - 1), abs=0.01)
    assert {"modes_covered", "w1", "spread"} <= set(metrics)


def test_training_evaluates_at_every_sample_step_and_the_last() -> None:
    from worker.gan.train import train

    hooks = RecordingHooks()
    train(ring_spec(), hooks=hooks)
    steps = [step for step, _ in hooks.evaluations]
    spec = ring_spec()
    expected = sorted(
        {s for s in range(1, spec.train.steps + 1) if s % spec.sample_every == 0}
        | {spec.train.steps}
    )
    assert steps == expected
    assert all("modes_covered" in metrics for _, metrics in hooks.evaluations)
    assert [step for step, _ in hooks.pictures] == expected
    # The figures a run ends on come from FINAL_SAMPLES; those along the way from fewer.
    counts = [metrics["samples"] for _, metrics in hooks.evaluations]
    assert counts == [EVAL_SAMPLES] * (len(expected) - 1) + [FINAL_SAMPLES]


def test_the_pictures_are_pngs_with_the_figures_in_them() -> None:
    from PIL import Image

    from worker.gan.evaluation import picture

    ring = _spec("toy:ring8")
    real = toy_distribution("toy:ring8").sample(EVAL_SAMPLES, torch.Generator().manual_seed(4))
    far = torch.full((10, 2), 50.0)  # outside any sensible view: counted, not dropped
    samples = torch.cat([real, far]).double()
    plane = picture(ring, samples, _figures("toy:ring8", samples), 500)
    assert plane is not None
    with Image.open(io.BytesIO(plane)) as image:
        assert image.format == "PNG" and image.size == (1235, 715)  # the view, zoomed modes

    line = _spec("toy:gauss1d")
    points = toy_distribution("toy:gauss1d").sample(EVAL_SAMPLES, torch.Generator().manual_seed(5))
    critic = nn.Linear(1, 1)
    metrics = {"w1": 0.01}
    drawn = picture(line, points.double(), metrics, 100, lambda x: critic(x))
    assert drawn is not None
    with Image.open(io.BytesIO(drawn)) as image:
        assert image.format == "PNG" and image.size == (800, 480)
    images = TrainSpec.model_validate(
        {"model": "dcgan", "data": {"source": "mnist", "key": "datasets/m"}}
    )
    assert picture(images, torch.zeros(4, 1, 28, 28), {}, 1) is None
    # With a discriminator, the plane is drawn over its decision surface, with a colour bar.
    surface = picture(ring, samples, _figures("toy:ring8", samples), 500, lambda x: x[:, 0])
    assert surface is not None
    with Image.open(io.BytesIO(surface)) as image:
        assert image.size == (1350, 715)


def test_images_get_an_inception_answer_that_says_why_it_is_missing() -> None:
    images = TrainSpec.model_validate(
        {"model": "dcgan", "data": {"source": "mnist", "key": "datasets/m"}}
    )
    metrics = score(images, torch.zeros(8, 1, 28, 28, dtype=torch.float64))
    assert metrics["inception_fid"] is None and metrics["inception_kid"] is None
    assert metrics["inception"].startswith("not available: ")
    assert "inception" not in score(_spec("toy:ring8"), torch.zeros(8, 2, dtype=torch.float64))


@pytest.mark.slow  # trains for seconds: in `make test`, not `make test-fast`
def test_wgan_gp_learns_the_1d_gaussian_and_its_critic_ranks_real_above_fake() -> None:
    """The classic 1-D picture: the generator moves onto N(3, 0.5²). With the paper's
    two-sided penalty this run's critic started with the wrong slope and stayed there,
    scoring fakes above real points (worker/gan/losses.py, `LossSpec.penalty`)."""
    from worker.gan.train import train

    spec = TrainSpec.model_validate(
        {
            "model": {"family": "mlp", "width": 64},
            "latent": {"dim": 4},
            "data": {"source": "toy:gauss1d"},
            "loss": "wgan_gp",
            "train": {"steps": 800, "batch_size": 256, "seed": 1},
            "sample_every": 400,
            "checkpoint_every": 800,
        }
    )
    assert spec.loss.penalty == "one_sided"
    hooks = RecordingHooks()
    train(spec, hooks=hooks)
    w1 = [metrics["w1"] for _, metrics in hooks.evaluations]
    assert w1[-1] < 0.08, w1
    last = hooks.reports[-1].metrics
    assert last["Loss/scores/real"] > last["Loss/scores/fake"]


def test_with_no_high_quality_sample_the_kl_is_null_not_infinity() -> None:
    nowhere = torch.full((100, 2), 7.0)
    metrics = evaluate(_spec("toy:ring8"), _Constant(nowhere[0]), torch.zeros(100, 4), _CPU)
    assert metrics["modes_covered"] == 0 and metrics["kl_from_uniform"] is None
    (warning,) = CollapseWatch().check(1, metrics)
    assert warning.kind == "modes-coverage", "no KL alarm on an undefined KL"
    assert "0/8 modes covered (95% interval 0-0); 0 of 100 samples high quality" in warning.message


_CPU = torch.device("cpu")
