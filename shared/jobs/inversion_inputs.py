"""What an `invert` sampling spec refers to, checked when it is submitted, so a mistake is a
422 naming the field (`spec.invert.images.dataset_id`, `spec.invert.images.indices.3`, ...)
rather than a failed job later:

- the source job's generator makes images (an mlp makes points), and `feature` loss has a
  feature space there (the digit classifier exists for MNIST only);
- a dataset is one the caller may read, holds images, of the generator's shape (channels,
  height, width) when both are known, and has the items `indices` / `count` ask for;
- a PNG artifact belongs to one of the caller's jobs, exists, and (read from its first 26
  bytes) is a grid of cells of the generator's size with its number of channels.

The worker checks all of it again as it reads the images (worker/inversion_images.py).
Finding the artifact and reading its first bytes is shared with the latents a sampling spec
names (`shared.jobs.artifact_refs`).
"""

from __future__ import annotations

import struct
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from shared.datasets import DatasetNotFoundError, get_dataset
from shared.grids import GRID_PADDING, grid_layout
from shared.jobs.artifact_refs import owned_artifact, problem, stored_head
from shared.models import Artifact, User
from shared.specs import SampleSpec, SpecError, TrainSpec
from shared.specs.inversion import ArtifactImages, DatasetImages, InversionSpec
from shared.specs.latent_checks import Problem
from shared.storage import Storage

FIELD = "spec.invert.images"
# A PNG's 8-byte signature, then its IHDR chunk: length, type, width, height, bit depth,
# colour type (0 grey, 4 grey + alpha: read as grey; 2 RGB, 3 palette, 6 RGBA: as RGB).
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IHDR = struct.Struct(">I4sIIBB")
_GREY_COLOUR_TYPES = (0, 4)


def check_inversion_inputs(
    session: Session, owner: User, spec: SampleSpec, source: dict[str, Any], store: Storage | None
) -> None:
    """Raise SpecError naming every problem of the spec's `invert` against the training job
    spec `source` (see the module docstring); nothing for other modes. Without `store` an
    artifact's pixels are left to the worker."""
    inversion = spec.invert
    if inversion is None:
        return
    try:
        trained = TrainSpec.model_validate(source)
    except ValidationError:
        return  # a spec stored by an older version: the worker reads the checkpoint's own
    if trained.model.family == "mlp" or trained.data.is_points:
        raise SpecError([problem("spec.job_id", f"job {spec.job_id} makes points; invert "
                                 "needs an image generator")])  # fmt: skip
    problems = _loss_problems(inversion, trained)
    shape = trained.data.sample_shape
    if isinstance(inversion.images, DatasetImages):
        problems += _dataset_problems(session, owner, inversion.images, shape)
    else:
        problems += _artifact_problems(session, owner, inversion.images, shape, store)
    if problems:
        raise SpecError(problems)


def _loss_problems(inversion: InversionSpec, trained: TrainSpec) -> list[Problem]:
    data = trained.data
    if inversion.loss == "feature" and not data.is_grey_mnist:
        return [
            problem(
                "spec.invert.loss",
                "feature loss measures in the digit classifier of grey MNIST data; "
                f"the generator was trained on {data.source}: use pixel",
            )
        ]
    return []


def _dataset_problems(
    session: Session, owner: User, images: DatasetImages, shape: tuple[int, ...] | None
) -> list[Problem]:
    path = f"{FIELD}.dataset_id"
    try:
        dataset = get_dataset(session, owner, images.dataset_id)
    except DatasetNotFoundError as missing:
        return [problem(path, str(missing))]
    if dataset.kind != "images":
        return [problem(path, f"dataset {dataset.id} holds points; invert needs images")]
    if shape is not None and dataset.shape is not None and tuple(dataset.shape) != shape:
        return [
            problem(
                path,
                f"dataset {dataset.id} holds images {list(dataset.shape)} (channels, height, "
                f"width); the generator makes {list(shape)}",
            )
        ]
    return _selection_problems(images, dataset.items, f"dataset {dataset.id}")


def _selection_problems(
    images: DatasetImages | ArtifactImages, available: int, holder: str
) -> list[Problem]:
    has = f"{holder} has {available} images"
    problems = [
        problem(f"{FIELD}.indices.{position}", f"{index} is past the last; {has}")
        for position, index in enumerate(images.indices or [])
        if index >= available
    ]
    if images.count is not None and images.count > available:
        problems.append(problem(f"{FIELD}.count", f"{images.count} asked for; {has}"))
    return problems


def _artifact_problems(
    session: Session,
    owner: User,
    images: ArtifactImages,
    shape: tuple[int, ...] | None,
    store: Storage | None,
) -> list[Problem]:
    row = owned_artifact(session, owner, images, FIELD, ".png", "PNG")
    if not isinstance(row, Artifact):
        return [row]
    if store is None or shape is None:
        return []
    # The PNG's signature and IHDR chunk; the rest is never read.
    header = stored_head(store, row, FIELD, len(_PNG_SIGNATURE) + _IHDR.size)
    if isinstance(header, dict):
        return [header]
    return _grid_problems(images, header, shape)


def _grid_problems(images: ArtifactImages, header: bytes, shape: tuple[int, ...]) -> list[Problem]:
    path = f"{FIELD}.name"
    if len(header) < len(_PNG_SIGNATURE) + _IHDR.size or not header.startswith(_PNG_SIGNATURE):
        return [problem(path, f"{images.name} is not a PNG file")]
    _length, kind, width, height, _depth, colour = _IHDR.unpack_from(header, len(_PNG_SIGNATURE))
    if kind != b"IHDR":
        return [problem(path, f"{images.name} is not a PNG file")]
    channels, cell_height, cell_width = shape
    layout = grid_layout(width, height, cell_width, cell_height)
    if layout is None:
        return [
            problem(
                path,
                f"{images.name} is {width}x{height} px, not a grid of {cell_width}x"
                f"{cell_height} cells {GRID_PADDING} px apart (the generator's size)",
            )
        ]
    has = 1 if colour in _GREY_COLOUR_TYPES else 3
    if has != channels:
        return [
            problem(path, f"{images.name} has {has} channel(s); the generator makes {channels}")
        ]
    rows, columns = layout
    return _selection_problems(images, rows * columns, images.name)
