"""How often a conditional generator draws the class it is asked for, by the data's
classifier (worker/gan/classifier.py): `class_accuracy`, the fraction of generated images
classified as the class asked for, and `per_class_accuracy`, the same for each class asked;
each with its 95% bootstrap interval and the sample size behind it, as the class figures beside
them report theirs."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from worker.gan.mode_coverage import bootstrap_histograms, percentile_interval


def class_accuracy_figures(predicted: Tensor, asked: Tensor, classes: int) -> dict[str, Any]:
    """The accuracy figures of images asked for `asked` classes and classified as `predicted`
    (int64 [n] each). A class asked for no image has accuracy null."""
    asked, predicted = asked.long().cpu(), predicted.long().cpu()
    right = (predicted == asked).long()
    # One cell per (class asked, right or wrong): the bootstrap resamples images, as the
    # intervals of class_kl and classes_covered do.
    cells = torch.bincount(asked * 2 + right, minlength=2 * classes).double()
    replicates = bootstrap_histograms(cells).reshape(-1, classes, 2)
    asked_counts = cells.reshape(classes, 2).sum(dim=1)
    per_class = cells.reshape(classes, 2)[:, 1] / asked_counts  # NaN where none asked
    replicate_totals = replicates.sum(dim=2)
    per_class_replicates = replicates[:, :, 1] / replicate_totals
    overall_replicates = replicates[:, :, 1].sum(dim=1) / replicate_totals.sum(dim=1)
    return {
        "class_accuracy": float(right.double().mean()),
        "class_accuracy_interval": percentile_interval(overall_replicates),
        "class_accuracy_samples": len(asked),
        "per_class_accuracy": [None if math.isnan(v) else v for v in per_class.tolist()],
        "per_class_accuracy_interval": [
            percentile_interval(per_class_replicates[:, c]) for c in range(classes)
        ],
        "per_class_samples": [int(count) for count in asked_counts],
    }
