"""Quality metrics a job reports while it trains: a registry of named evaluators.

Every `eval_every` steps rank 0 draws EVAL_SAMPLES points from the generator (its average
when one is kept) on latents fixed for the whole run, and runs the evaluators that apply to
the data: mode figures for the toy mixtures (the definitions of the mode-collapse literature,
VEEGAN / PacGAN: a sample is high quality within 3 std of its nearest centre, a mode is
covered by at least one high-quality sample, 2,500 samples), the exact 1-D Wasserstein
distance for data on a line, and the spread of the generated batch for anything. The run's
final evaluation (and an `evaluate` job of its last checkpoint, which reproduces it) draws
FINAL_SAMPLES instead, so the figures a run ends on have intervals narrow enough to judge a
goal by. A metric is a plain number (or a list of counts), stored in metrics.jsonl and on
the job.

The mode-collapse alarm over a run's series of evaluations is `collapse_alarm.CollapseWatch`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from shared.specs import TrainSpec
from worker.gan.checkpoint import checkpoint_spec
from worker.gan.classifier import EVAL_IMAGES, DigitScorer
from worker.gan.collapse_alarm import CollapseWatch
from worker.gan.conditional import balanced_labels, proportional_labels
from worker.gan.line_distance import w1_between
from worker.gan.mnist_files import load_mnist_labelled
from worker.gan.mode_coverage import (
    jsd_from_uniform,
    kl_from_uniform,
    mode_histogram,
    mode_intervals,
)
from worker.gan.models import build_discriminator
from worker.gan.path_length import PPL_PAIRS_IMAGES, PPL_PAIRS_POINTS, path_length
from worker.gan.point_scores import is_point_file_data, point_scorer
from worker.gan.priors import sample_latents
from worker.gan.sample import images_per_batch, load_generator
from worker.gan.seeding import Stream, generator_for
from worker.gan.thumbnails import scaled_down
from worker.gan.toydata import ToyDistribution, toy_distribution

# The papers' sample count for mode figures.
EVAL_SAMPLES = 2500
# Samples behind the mode and class figures a run ends on: class KL from 600 digits has a 95%
# interval about 0.05 wide, the size of the goal it is judged against; from 10,000, about 0.01.
FINAL_SAMPLES = 10_000
# Latents put through G at once: 10,000 28 px images in one DCGAN pass would need gigabytes.
GENERATE_BATCH = 1_000
# Side of the images an evaluation keeps: larger ones are area-averaged down as each batch
# leaves G. A final evaluation holds 10,000 samples as float64; at 256 px RGB that is 16 GB,
# at 64 px 1 GB (what a 64 px run already held). Spread is measured at this side then; the
# digit classifier sees 28 px whatever the side (worker/gan/classifier.py).
EVAL_MAX_SIDE = 64
# Real points drawn to compare a 1-D generator with: the W1 estimate's own noise at this size
# is about 0.004 for N(3, 0.5²), well below the 0.05 a good run reaches.
W1_REFERENCE_SAMPLES = 100_000
# Samples whose pairwise distances give the spread.
SPREAD_SAMPLES = 256
# Latents and reference data come from these fixed seeds, so two evaluations of one
# generator give the same numbers, and evaluations across steps compare like with like.
EVAL_SEED = 7_919
# Which evaluation stream a conditional model's asked classes come from (0-3 are taken).
_LABELS_DRAW = 4

Metrics = dict[str, Any]


@dataclass(frozen=True)
class EvalInput:
    """What an evaluator sees: the spec, the generated samples and, for toy data, the truth."""

    spec: TrainSpec
    samples: Tensor  # [n, ...] on the CPU, float64
    distribution: ToyDistribution | None


def mode_figures(given: EvalInput) -> Metrics:
    """Modes covered, % high quality, per-mode counts, KL and JSD of the high-quality samples'
    mode histogram from uniform (0 for perfectly even, ln K when one mode takes everything);
    with the sample size behind them (`samples`, `high_quality_samples`) and a 95% bootstrap
    interval beside modes covered, high quality and KL (`<figure>_interval`: [low, high],
    null where the figure is undefined in most replicates)."""
    assert given.distribution is not None
    modes = given.distribution.modes
    counts, good = mode_histogram(given.samples, modes, given.distribution.std)
    return {
        "modes_covered": int((counts > 0).sum()),
        "mode_count": len(modes),
        "high_quality": float(good.double().mean()),
        "mode_counts": [int(c) for c in counts],
        "kl_from_uniform": kl_from_uniform(counts),
        "jsd_from_uniform": jsd_from_uniform(counts),
        "samples": len(given.samples),
        "high_quality_samples": int(good.sum()),
        **mode_intervals(counts, len(given.samples)),
    }


def wasserstein_1d(given: EvalInput) -> Metrics:
    """The exact W1 between the generated points and the data distribution on a line: the
    mean gap between their quantile functions (reference: W1_REFERENCE_SAMPLES real points)."""
    assert given.distribution is not None
    reference = _reference_points(given.spec.data.source)
    return {"w1": w1_between(given.samples.flatten(), reference)}


@cache
def _reference_points(source: str) -> Tensor:
    """W1_REFERENCE_SAMPLES real points of a toy source, flattened (drawn once per process)."""
    generator = generator_for(EVAL_SEED, Stream.EVALUATION, 1)
    points = toy_distribution(source).sample(W1_REFERENCE_SAMPLES, generator)
    return points.flatten().double()


def spread(given: EvalInput) -> Metrics:
    """Mean distance between pairs of generated samples (the first SPREAD_SAMPLES): falls
    towards 0 when the generator collapses onto a few outputs."""
    batch = given.samples[:SPREAD_SAMPLES].reshape(min(SPREAD_SAMPLES, len(given.samples)), -1)
    distances = torch.pdist(batch)
    return {"spread": float(distances.mean()) if len(distances) else 0.0}


# Why images get no Inception FID/KID: the honest answer beats a number from other weights.
INCEPTION_UNAVAILABLE = (
    "not available: Inception FID/KID need the pretrained Inception-v3 weights, which no "
    "package installed here ships offline and which ganforge never downloads; compare runs "
    "with frechet_distance (classifier features, MNIST) and spread instead"
)


def inception_figures(given: EvalInput) -> Metrics:
    """Inception FID and KID for images: null with the reason (see INCEPTION_UNAVAILABLE), so
    a client asking for FID reads why, rather than finding the key missing."""
    return {"inception_fid": None, "inception_kid": None, "inception": INCEPTION_UNAVAILABLE}


@dataclass(frozen=True)
class Evaluator:
    name: str
    applies: Callable[[TrainSpec], bool]
    run: Callable[[EvalInput], Metrics]


def _is_toy(spec: TrainSpec) -> bool:
    return spec.data.source.startswith("toy:")


def _is_line(spec: TrainSpec) -> bool:
    return spec.data.source == "toy:gauss1d"


# The registry: a new metric is one function and one entry.
EVALUATORS: tuple[Evaluator, ...] = (
    Evaluator("modes", _is_toy, mode_figures),
    Evaluator("w1", _is_line, wasserstein_1d),
    Evaluator("spread", lambda spec: True, spread),
    Evaluator("inception", lambda spec: spec.data.is_image, inception_figures),
)


def evaluators_for(spec: TrainSpec) -> list[Evaluator]:
    return [e for e in EVALUATORS if e.applies(spec)]


def evaluation_latents(spec: TrainSpec, count: int | None = None) -> Tensor:
    """The latents every evaluation of the run uses (fixed by EVAL_SEED, not the job seed):
    `count`, else EVAL_SAMPLES for toy data and SPREAD_SAMPLES for images (a DCGAN pass over
    2,500 images would cost seconds on a CPU)."""
    count = count or (EVAL_SAMPLES if _is_toy(spec) else SPREAD_SAMPLES)
    return sample_latents(spec.latent, count, generator_for(EVAL_SEED, Stream.EVALUATION, 0))


def digit_scorer(spec: TrainSpec, data_path: Path | None, hooks: Any) -> DigitScorer | None:
    """A classifier-based scorer for grey MNIST data (at any size: generated images are scaled
    down to its 28 px) with its labels file beside the images; None for anything else (or
    when the labels are missing)."""
    data = spec.data
    if not data.is_grey_mnist:
        return None
    folder = data_path or (Path(data.path) if data.path else None)
    if folder is None or not folder.is_dir():
        return None
    labelled = load_mnist_labelled(folder)
    if labelled is None:
        return None
    # Building (or training) the classifier draws random numbers: from a forked global RNG,
    # so a run's own random stream, and with it bitwise resumption, does not depend on
    # whether the classifier came from the cache.
    with torch.random.fork_rng(devices=[]):
        return DigitScorer(*labelled, hooks.cached)


def evaluation_labels(spec: TrainSpec, count: int, digits: DigitScorer | None) -> Tensor | None:
    """The classes a conditional model's evaluations ask for (None for an unconditional one):
    in the data's proportions where its classifier knows them, so the class KL can reach 0,
    else each class in turn; fixed by EVAL_SEED like the latents beside them."""
    if not spec.model.conditional:
        return None
    classes = spec.model.classes or 0
    if digits is None or len(digits.data_classes) > classes:
        return balanced_labels(count, classes)
    generator = generator_for(EVAL_SEED, Stream.EVALUATION, _LABELS_DRAW)
    return proportional_labels(digits.data_classes, count, generator)


def needs_data(spec: TrainSpec) -> bool:
    """Whether evaluating `spec`'s generator reads its training data (the labelled digits
    a classifier is trained on, a point file's held-back points); toy data is generated, so
    its evaluation reads nothing."""
    return spec.data.source == "mnist" or is_point_file_data(spec)


def evaluate_checkpoint(
    checkpoint: dict[str, Any], hooks: Any, device: torch.device, data_path: Path | None
) -> Metrics:
    """The evaluation training would have made at the checkpoint's step, of its generator
    (the weight average when kept), with the picture over its discriminator: what an
    `evaluate` job runs on any checkpoint, including those of runs from before a metric
    existed."""
    spec = checkpoint_spec(checkpoint)
    generator, _ = load_generator(checkpoint, device)
    critic = None
    if spec.model.family != "vae":
        critic = build_discriminator(spec)
        critic.load_state_dict(checkpoint["discriminator"])
        critic.to(device).eval()
    evaluation = RunEvaluation(spec, hooks, device, data_path)
    return evaluation(checkpoint["step"], generator, critic)


def generate(
    generator: nn.Module,
    latents: Tensor,
    device: torch.device,
    labels: Tensor | None = None,
    batch: int = GENERATE_BATCH,
) -> Tensor:
    """G(latents) in eval mode, without grads, `batch` at a time, as float64 on the CPU
    (images scaled down to EVAL_MAX_SIDE); G's mode is restored. `labels`: the classes a
    conditional G is asked for."""
    was_training = generator.training
    generator.eval()
    batches = latents.split(batch)
    conditions = [()] * len(batches) if labels is None else [
        (part.to(device),) for part in labels.split(batch)
    ]  # fmt: skip
    with torch.no_grad():
        samples = torch.cat(
            [
                _kept(generator(batch.to(device), *condition).detach())
                for batch, condition in zip(batches, conditions, strict=True)
            ]
        )
    generator.train(was_training)
    return samples


def _kept(samples: Tensor) -> Tensor:
    """A batch as the evaluation keeps it: float64 on the CPU, images at most EVAL_MAX_SIDE."""
    if samples.dim() == 4:
        samples = scaled_down(samples.float(), EVAL_MAX_SIDE)
    return samples.to("cpu", torch.float64)


def score(spec: TrainSpec, samples: Tensor) -> Metrics:
    """Run every evaluator that applies to `spec` on generated samples."""
    distribution = toy_distribution(spec.data.source) if _is_toy(spec) else None
    given = EvalInput(spec, samples, distribution)
    results: Metrics = {}
    for evaluator in evaluators_for(spec):
        results.update(evaluator.run(given))
    # Stored as JSON (PostgreSQL refuses NaN and infinity): a non-finite figure is null.
    return {
        name: None if isinstance(value, float) and not math.isfinite(value) else value
        for name, value in results.items()
    }


def evaluate(
    spec: TrainSpec, generator: nn.Module, latents: Tensor, device: torch.device
) -> Metrics:
    """Score G(latents): every evaluator that applies to `spec`."""
    return score(spec, generate(generator, latents, device))


def picture(
    spec: TrainSpec,
    samples: Tensor,
    metrics: Metrics,
    step: int,
    critic: Callable[[Tensor], Tensor] | None = None,
) -> bytes | None:
    """The evaluation's PNG for toy data (worker/gan/plots.py); None for images, whose sample
    grid is their picture."""
    if not _is_toy(spec):
        return None
    from worker.gan import plots  # matplotlib loads only where a picture is drawn

    distribution = toy_distribution(spec.data.source)
    real = distribution.sample(EVAL_SAMPLES, generator_for(EVAL_SEED, Stream.EVALUATION, 2))
    if _is_line(spec):
        return plots.line_png(samples, real, critic, metrics, step, distribution)
    return plots.plane_png(samples, real, distribution, metrics, step, critic)


class RunEvaluation:
    """A run's evaluations: fixed latents, the collapse watch, and where results go."""

    def __init__(
        self, spec: TrainSpec, hooks: Any, device: torch.device, data_path: Path | None = None
    ) -> None:
        self.spec, self.hooks, self.device = spec, hooks, device
        self.digits = digit_scorer(spec, data_path, hooks)
        count = EVAL_IMAGES if self.digits is not None else None
        self.latents = evaluation_latents(spec, count)
        self.final_latents = evaluation_latents(spec, FINAL_SAMPLES)
        self.labels = evaluation_labels(spec, len(self.latents), self.digits)
        self.final_labels = evaluation_labels(spec, FINAL_SAMPLES, self.digits)
        self.watch = CollapseWatch(warmup=spec.alarm_warmup)
        self.evaluations = 0
        # Point files (uploads): PRDC against held-back points (worker/gan/point_scores.py).
        self.points = point_scorer(spec, data_path)

    def __call__(
        self,
        step: int,
        generator: nn.Module,
        critic: nn.Module | None = None,
        final: bool | None = None,
    ) -> Metrics:
        """Score G, draw the picture (with the critic's curve for 1-D data when given), report
        both, and hand the collapse alarm's warnings that begin or end here to the hooks.
        A `final` evaluation (by default: at the run's last step) scores FINAL_SAMPLES."""
        if self.evaluations == 0:
            # Evaluations run every evaluation_every steps from the start: a first one past
            # that follows a resume (or scores a checkpoint), after earlier evaluations.
            self.watch.resumed = step > self.spec.evaluation_every
        self.evaluations += 1
        if final is None:
            final = step >= self.spec.train.steps
        latents, labels = (
            (self.final_latents, self.final_labels) if final else (self.latents, self.labels)
        )
        batch = images_per_batch(GENERATE_BATCH, self.spec)
        samples = generate(generator, latents, self.device, labels, batch)
        metrics = score(self.spec, samples)
        if self.digits is not None:
            metrics.update(self.digits.figures(samples, labels))
        if self.points is not None:
            metrics.update(self.points.figures(lambda z: generate(generator, z, self.device)))
        metrics["path_length"] = self.path_length(generator)
        png = picture(self.spec, samples, metrics, step, self._critic(critic))
        self.hooks.report_evaluation(step, metrics, png)
        for event in self.watch.check(step, metrics):
            if event.ends:
                self.hooks.end_warning(event.kind, event.message)
            else:
                self.hooks.warn(event.message, self.spec.on_collapse == "stop", kind=event.kind)
        return metrics

    def path_length(self, generator: nn.Module) -> float | None:
        """PPL (worker/gan/path_length.py): in the digit classifier's features for MNIST, in
        data space otherwise; None when not finite."""
        features = self.digits.feature_network if self.digits is not None else None
        pairs = PPL_PAIRS_POINTS if _is_toy(self.spec) else PPL_PAIRS_IMAGES
        value = path_length(
            generator, self.spec.latent, self.device, pairs=pairs, features=features,
            seed=EVAL_SEED, classes=self.spec.model.classes, image_side=self._image_side(),
        )  # fmt: skip
        return value if math.isfinite(value) else None

    def _image_side(self) -> int | None:
        shape = self.spec.data.sample_shape
        return shape[-1] if shape is not None and len(shape) == 3 else None

    def _critic(self, critic: nn.Module | None) -> Callable[[Tensor], Tensor] | None:
        """D over single points, in fp32 on the CPU copy of x. A packed D reads `pack` points
        at once; it is shown scoring a pack of copies of x (what it says of a generator that
        put every sample of a pack at x)."""
        if critic is None:
            return None
        device, pack = self.device, self.spec.model.pack

        def scores(x: Tensor) -> Tensor:
            was_training = critic.training
            critic.eval()
            try:
                return critic(x.repeat_interleave(pack, dim=0).to(device)).float().cpu()
            finally:
                critic.train(was_training)

        return scores
