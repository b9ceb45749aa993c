"""A small digit classifier, trained on a job's own labelled MNIST data, that scores images a
generator makes: which classes it draws, how sure the classifier is, and how close the
generated set is to the real one in the classifier's feature space.

Trained once per dataset (a few seconds on a CPU) and cached by the hooks (the job's store,
under the SHA-256 of the images and labels), so every job on the same data shares it.

Class figures on every generated image given (EVAL_IMAGES during a run, FINAL_SAMPLES at its
end), the rest on EVAL_IMAGES generated and as many real held-out images:
- `classes_covered`: classes the classifier gives at least one sample with confidence >= 0.9
  (the digit analogue of a covered mode); `class_kl`: KL of the generated class histogram
  from the data's; each with its 95% bootstrap interval (`classes_covered_interval`,
  `class_kl_interval`) and the sample size behind both (`class_samples`); `confidence`: the
  mean top-class probability;
- `precision`, `recall`, `density`, `coverage` (Kynkäänniemi et al. 2019; Naeem et al. 2020)
  with k = 5 nearest neighbours in the feature space;
- `frechet_distance`: the Fréchet distance of Gaussians fitted to the two feature sets (FID's
  formula on this classifier's 64 features; not comparable with Inception FID figures).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from worker.gan.class_accuracy import class_accuracy_figures
from worker.gan.mode_coverage import (
    bootstrap_histograms,
    kl_between_rows,
    percentile_interval,
)
from worker.gan.seeding import Stream, generator_for
from worker.gan.thumbnails import scaled_down

CLASSES = 10
FEATURES = 64
# The side of the images the classifier reads; larger generated images are scaled down first.
DIGIT_SIDE = 28
# Held out of the classifier's training, and scored against the generated images.
HELD_OUT_FRACTION = 0.15
EPOCHS = 8
BATCH = 64
LEARNING_RATE = 3e-3
MAX_SHIFT = 2
# Images compared per evaluation: enough for stable k-NN figures, a DCGAN pass of a second.
EVAL_IMAGES = 600
# Images classified at once (a run's final evaluation classifies 10,000).
CLASSIFY_BATCH = 1_000
NEIGHBOURS = 5
CONFIDENT = 0.9
CLASSIFIER_SEED = 104_729


class DigitClassifier(nn.Module):
    """Two convolutions and two linear layers: ~99% on MNIST when trained on all of it."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, FEATURES), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(FEATURES, CLASSES)

    def features(self, images: Tensor) -> Tensor:
        return self.trunk(images)  # type: ignore[no-any-return]

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.features(images))  # type: ignore[no-any-return]


@dataclass(frozen=True)
class TrainedClassifier:
    model: DigitClassifier
    accuracy: float  # on the held-out images
    held_out: Tensor  # indices of the images it never trained on


def as_unit_range(images: Tensor) -> Tensor:
    """uint8 [N, 28, 28] or [N, 1, 28, 28] -> float [N, 1, 28, 28] in [-1, 1], as G makes;
    float images of a larger side are area-averaged down to 28 px first."""
    if images.dtype != torch.uint8:
        return scaled_down(images.float(), DIGIT_SIDE).reshape(len(images), 1, 28, 28)
    return images.reshape(len(images), 1, 28, 28).float() / 127.5 - 1


class AtDigitSide(nn.Module):
    """Scales images down to the classifier's 28 px (area averaging); no weights."""

    def forward(self, images: Tensor) -> Tensor:
        return scaled_down(images, DIGIT_SIDE)


def dataset_digest(images: Tensor, labels: Tensor) -> str:
    digest = hashlib.sha256(images.numpy().tobytes())
    digest.update(labels.numpy().tobytes())
    return digest.hexdigest()[:32]


def train_classifier(images: Tensor, labels: Tensor) -> TrainedClassifier:
    """Train on all but a held-out share (fixed by CLASSIFIER_SEED): Adam with a one-cycle
    schedule, each batch shifted by up to 2 px (on 3,400 digits that is what lifts held-out
    accuracy from 97% to 98%); about 7 s on one CPU thread."""
    generator = generator_for(CLASSIFIER_SEED, Stream.EVALUATION, 10)
    order = torch.randperm(len(images), generator=generator)
    cut = int(len(images) * HELD_OUT_FRACTION)
    held_out, training = order[:cut], order[cut:]
    model = DigitClassifier()
    torch.manual_seed(CLASSIFIER_SEED)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    batches = EPOCHS * -(-len(training) // BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, LEARNING_RATE, total_steps=batches)
    x, y = as_unit_range(images), labels.long()
    for _epoch in range(EPOCHS):
        shuffled = training[torch.randperm(len(training), generator=generator)]
        for start in range(0, len(shuffled), BATCH):
            batch = shuffled[start : start + BATCH]
            dx, dy = torch.randint(-MAX_SHIFT, MAX_SHIFT + 1, (2,), generator=generator).tolist()
            shifted = torch.roll(x[batch], shifts=(dy, dx), dims=(2, 3))
            loss = F.cross_entropy(model(shifted), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    with torch.no_grad():
        predicted = model(x[held_out]).argmax(dim=1)
    accuracy = float((predicted == y[held_out]).float().mean())
    return TrainedClassifier(model, accuracy, held_out)


def classifier_bytes(trained: TrainedClassifier) -> bytes:
    buffer = io.BytesIO()
    torch.save(
        {"state": trained.model.state_dict(), "accuracy": trained.accuracy,
         "held_out": trained.held_out},
        buffer,
    )  # fmt: skip
    return buffer.getvalue()


def classifier_from_bytes(data: bytes) -> TrainedClassifier:
    saved = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    model = DigitClassifier()
    model.load_state_dict(saved["state"])
    model.eval()
    return TrainedClassifier(model, float(saved["accuracy"]), saved["held_out"])


class DigitScorer:
    """Scores generated digits against a job's labelled data (see the module docstring)."""

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        cached: Callable[[str, Callable[[], bytes]], bytes],
    ) -> None:
        name = f"digit-classifier-{dataset_digest(images, labels)}"
        trained = classifier_from_bytes(
            cached(name, lambda: classifier_bytes(train_classifier(images, labels)))
        )
        self.model, self.accuracy = trained.model, trained.accuracy
        self.held_out = trained.held_out
        real = trained.held_out[:EVAL_IMAGES]
        with torch.no_grad():
            self.real_features = self.model.features(as_unit_range(images[real]))
        counts = torch.bincount(labels.long(), minlength=CLASSES).double()
        self.data_classes = counts / counts.sum()

    @property
    def feature_network(self) -> nn.Module:
        """Images of any side -> the classifier's features: what path length and feature-loss
        inversion measure in (a 128 px generator's images are scaled down to 28 px first)."""
        return nn.Sequential(AtDigitSide(), self.model.trunk)

    def figures(self, generated: Tensor, asked: Tensor | None = None) -> dict[str, Any]:
        """Class figures from every generated image; the feature-space figures (k-NN,
        Fréchet) from the first EVAL_IMAGES, as many as the held-out real images they are
        compared with, so they mean the same at every evaluation. `asked`: the classes a
        conditional generator was asked for, one per image, which adds how often it drew
        them (`class_accuracy`)."""
        with torch.no_grad():
            features = torch.cat(
                [
                    self.model.features(as_unit_range(batch.float().clamp(-1, 1)))
                    for batch in generated.split(CLASSIFY_BATCH)
                ]
            )
            probabilities = F.softmax(self.model.head(features), dim=1)
        confidence, predicted = probabilities.max(dim=1)
        sure = confidence >= CONFIDENT
        classes = torch.bincount(predicted, minlength=CLASSES).double()
        covered = torch.bincount(predicted[sure], minlength=CLASSES)
        compared = features[:EVAL_IMAGES]
        accuracy = {} if asked is None else class_accuracy_figures(predicted, asked, CLASSES)
        return {
            **accuracy,
            "classifier_accuracy": self.accuracy,
            "classes_covered": int((covered > 0).sum()),
            "class_counts": [int(c) for c in classes],
            "class_kl": _kl(classes / classes.sum(), self.data_classes),
            "class_samples": len(features),
            **self._intervals(predicted + CLASSES * sure.long()),
            "confidence": float(confidence.mean()),
            "feature_samples": len(compared),
            **nearest_neighbour_figures(self.real_features, compared),
            "frechet_distance": frechet_distance(self.real_features, compared),
        }

    def _intervals(self, cells: Tensor) -> dict[str, list[float] | None]:
        """95% bootstrap intervals of `classes_covered` and `class_kl`, from each sample's
        cell: its class, plus CLASSES when the classifier is sure of it."""
        replicates = bootstrap_histograms(torch.bincount(cells, minlength=2 * CLASSES))
        unsure, sure = replicates[:, :CLASSES], replicates[:, CLASSES:]
        return {
            "classes_covered_interval": percentile_interval((sure > 0).sum(dim=1).double(), True),
            "class_kl_interval": percentile_interval(
                kl_between_rows(unsure + sure, self.data_classes)
            ),
        }


def _kl(p: Tensor, q: Tensor) -> float:
    nonzero = p > 0
    return float((p[nonzero] * (p[nonzero] / q[nonzero].clamp_min(1e-12)).log()).sum())


def nearest_neighbour_figures(real: Tensor, fake: Tensor, k: int = NEIGHBOURS) -> dict[str, float]:
    """Precision, recall (k-NN manifolds), density and coverage of `fake` against `real`."""
    real, fake = real.double(), fake.double()
    real_radius = _kth_neighbour_distance(real, k)
    fake_radius = _kth_neighbour_distance(fake, k)
    fake_to_real = torch.cdist(fake, real)  # [F, R]
    inside_real = fake_to_real <= real_radius[None, :]
    precision = float(inside_real.any(dim=1).double().mean())
    recall = float((torch.cdist(real, fake) <= fake_radius[None, :]).any(dim=1).double().mean())
    density = float(inside_real.double().sum(dim=1).mean() / k)
    nearest_fake = fake_to_real.min(dim=0).values
    coverage = float((nearest_fake <= real_radius).double().mean())
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


def _kth_neighbour_distance(points: Tensor, k: int) -> Tensor:
    distances = torch.cdist(points, points)
    return distances.kthvalue(k + 1, dim=1).values  # +1: each point is its own nearest


def frechet_distance(real: Tensor, fake: Tensor) -> float:
    """‖μ_r - μ_f‖² + tr(Σ_r + Σ_f - 2 (Σ_r Σ_f)^½), the square root through eigenvalues of
    Σ_r^½ Σ_f Σ_r^½ (symmetric, so no complex parts to trim)."""
    real, fake = real.double(), fake.double()
    mean_gap = float(((real.mean(0) - fake.mean(0)) ** 2).sum())
    sigma_r, sigma_f = torch.cov(real.T), torch.cov(fake.T)
    root_r = _sqrt_psd(sigma_r)
    product = root_r @ sigma_f @ root_r
    cross = torch.linalg.eigvalsh((product + product.T) / 2).clamp_min(0).sqrt().sum()
    return mean_gap + float(torch.trace(sigma_r) + torch.trace(sigma_f) - 2 * cross)


def _sqrt_psd(matrix: Tensor) -> Tensor:
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T
