"""The classes a sampling job draws from a conditional generator (`SampleSpec.classes` and
`class_grid`), as labels beside its latents; checked against the model here, where its number
of classes is known (the API sees only the job's spec, whose classes the data fills in)."""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import Tensor

from shared.specs import SampleSpec, TrainSpec
from worker.gan.conditional import balanced_labels
from worker.gan.errors import ClassesError


def latents_with_classes(
    spec: TrainSpec, sampling: SampleSpec, latents: Tensor
) -> tuple[Tensor, Tensor | None]:
    """(latents, labels) to draw: a class grid repeats the latents once per row, each row one
    class; `classes` gives one class or one per latent; an interpolation's classes give
    class weights [n, classes] moving between them (`path_class_weights`); a conditional
    model asked for none draws classes in turn, an unconditional one gets no labels (None)."""
    field, asked = sampling.asked_classes or ("classes", None)
    if not spec.model.conditional:
        if asked is not None:
            raise ClassesError(
                f"spec.{field}: the model of job {sampling.job_id} is not "
                "conditional (model.conditional): it draws no classes"
            )
        return latents, None
    classes = spec.model.classes or 0
    listed = [asked] if isinstance(asked, int) else list(asked or [])
    too_high = [number for number in listed if number >= classes]
    if too_high:
        raise ClassesError(
            f"spec.{field}: class {too_high[0]} does not exist: the model has {classes} "
            f"classes, 0-{classes - 1}"
        )
    path = sampling.interpolation
    if path is not None and path.classes is not None:
        return latents, path_class_weights(path.classes, path.steps, classes)
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


def path_class_weights(path_classes: list[int], steps: int, classes: int) -> Tensor:
    """Class weights [(len - 1)(steps - 1) + 1, classes] along a path through one class per
    point: each leg of `steps` moves linearly from its first class's one-hot row to its
    second's (t as the latents' `interpolate` spaces it), legs sharing their ends. Rows at
    the points are exactly one-hot, so those images are the pure classes'."""
    t = torch.linspace(0, 1, steps, dtype=torch.float64)[:, None]
    one_hot = torch.eye(classes, dtype=torch.float64)
    legs = [(1 - t) * one_hot[a] + t * one_hot[b] for a, b in pairwise(path_classes)]
    return torch.cat([legs[0], *(leg[1:] for leg in legs[1:])]).to(torch.float32)


# Widest class-per-column sample grid: 16 columns of 28-64 px images still read as one grid.
MAX_CLASS_COLUMNS = 16


def class_columns(spec: TrainSpec) -> int | None:
    """Columns of a conditional model's snapshot grid, whose images come in class turn (G
    without labels): one per class, so each column is a class; None (square-ish) otherwise."""
    classes = spec.model.classes
    if not spec.model.conditional or classes is None or classes > MAX_CLASS_COLUMNS:
        return None
    return classes
