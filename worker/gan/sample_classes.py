"""The classes a sampling job draws from a conditional generator (`SampleSpec.classes` and
`class_grid`), as labels beside its latents; checked against the model here, where its number
of classes is known (the API sees only the job's spec, whose classes the data fills in)."""

from __future__ import annotations

import torch
from torch import Tensor

from shared.specs import SampleSpec, TrainSpec
from worker.gan.conditional import balanced_labels
from worker.gan.errors import ClassesError


def latents_with_classes(
    spec: TrainSpec, sampling: SampleSpec, latents: Tensor
) -> tuple[Tensor, Tensor | None]:
    """(latents, labels) to draw: a class grid repeats the latents once per row, each row one
    class; `classes` gives one class or one per latent; a conditional model asked for
    neither draws classes in turn, an unconditional one gets no labels (None)."""
    asked = sampling.class_grid if sampling.class_grid is not None else sampling.classes
    if not spec.model.conditional:
        if asked is not None:
            field = "class_grid" if sampling.class_grid is not None else "classes"
            raise ClassesError(
                f"spec.{field}: the model of job {sampling.job_id} is not "
                "conditional (model.conditional): it draws no classes"
            )
        return latents, None
    classes = spec.model.classes or 0
    listed = [asked] if isinstance(asked, int) else list(asked or [])
    too_high = [number for number in listed if number >= classes]
    if too_high:
        field = "class_grid" if sampling.class_grid is not None else "classes"
        raise ClassesError(
            f"spec.{field}: class {too_high[0]} does not exist: the model has {classes} "
            f"classes, 0-{classes - 1}"
        )
    if sampling.class_grid is not None:
        rows = torch.tensor(sampling.class_grid, dtype=torch.int64)
        return latents.repeat(len(rows), 1), rows.repeat_interleave(len(latents))
    if isinstance(asked, int):
        return latents, torch.full((len(latents),), asked, dtype=torch.int64)
    if asked is not None:
        if len(asked) != len(latents):
            raise ClassesError(
                f"spec.classes: one class per image: {len(latents)} images, {len(asked)} classes"
            )
        return latents, torch.tensor(asked, dtype=torch.int64)
    return latents, balanced_labels(len(latents), classes)


# Widest class-per-column sample grid: 16 columns of 28-64 px images still read as one grid.
MAX_CLASS_COLUMNS = 16


def class_columns(spec: TrainSpec) -> int | None:
    """Columns of a conditional model's snapshot grid, whose images come in class turn (G
    without labels): one per class, so each column is a class; None (square-ish) otherwise."""
    classes = spec.model.classes
    if not spec.model.conditional or classes is None or classes > MAX_CLASS_COLUMNS:
        return None
    return classes
