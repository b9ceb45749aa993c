"""The `data` part of a training spec: where the samples come from and what shape they have.

Its own module because data sources are their own seam: the API validates them, the dataset
upload checks and the worker's loaders read them, and none of that needs the rest of a spec.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

# Data keys are confined to the store's datasets/ area: a spec can never point a job at
# another job's artifacts, and no "..", spaces or odd characters reach a key. A key is checked
# one `/`-separated part at a time against this flat pattern: the single pattern it replaces,
# `(?:part/?)+`, backtracked exponentially (a 26-character key took 12 s to refuse).
_DATASET_KEY_ROOT = "datasets/"
_KEY_PART = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
# S3's own limit on a key; a worker path is at most PATH_MAX (4096 on Linux).
MAX_KEY_LENGTH = 1024
MAX_PATH_LENGTH = 4096

ToySource = Literal["toy:ring8", "toy:grid25", "toy:gauss1d"]
DataSource = ToySource | Literal["mnist", "npz", "images", "dataset"]
# Image sides the dcgan family has layouts for (worker/gan/models.py `_DCGAN_PLANS`).
ImageSize = Literal[28, 32, 64, 128, 256]
IMAGE_SIZES = (28, 32, 64, 128, 256)
# The sizes as error messages list them: "28, 32, 64, 128 or 256".
IMAGE_SIZES_TEXT = ", ".join(map(str, IMAGE_SIZES[:-1])) + f" or {IMAGE_SIZES[-1]}"
# Dimension of the points each toy source yields.
TOY_POINT_DIMS: dict[str, int] = {"toy:ring8": 2, "toy:grid25": 2, "toy:gauss1d": 1}
# Points live on a line or in the plane: what the mlp family and the scatter plots handle.
POINT_DIMS = (1, 2)
MNIST_SIDE = 28
# Loader processes a rank may ask for to stream a sharded dataset: a handful saturate a
# node's disk and decoders; more only take cores from the step.
MAX_LOADER_WORKERS = 16
# Upload ids are ours (shared.models.new_id): 32 hex characters.
_DATASET_ID = re.compile(r"[0-9a-f]{32}")


def is_dataset_key(key: str) -> bool:
    """Whether `key` names a store prefix under datasets/: `/`-separated parts of letters,
    digits, `.`, `_`, `-` (none starting with `.`, so no `..`), an optional trailing `/`.
    Linear in the key's length, which is bounded first."""
    if len(key) > MAX_KEY_LENGTH or not key.startswith(_DATASET_KEY_ROOT):
        return False
    parts = key[len(_DATASET_KEY_ROOT) :].split("/")
    if parts[-1] == "":  # a trailing slash
        parts.pop()
    return bool(parts) and all(_KEY_PART.fullmatch(part) for part in parts)


class StrictModel(BaseModel):
    """Base of every spec model: unknown fields are errors, specs are immutable values, and
    no string holds a NUL (PostgreSQL cannot store one, and no name or path needs it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if isinstance(value, str) and "\0" in value:
            raise ValueError("must not contain a NUL character")
        return value


class DataSpec(StrictModel):
    """Where the training data comes from, and what shape one sample has.

    - `toy:ring8`, `toy:grid25` (points in the plane) and `toy:gauss1d` (points on a line)
      are generated in memory from the job seed;
    - `mnist` reads idx files (gzipped or not) from a worker folder (`path`) or an
      artifact-store prefix (`key`);
    - `npz` reads one .npz file, points or images told apart by the array's rank, and
      `images` a folder, .zip or .tar(.gz) of PNG/JPEG files, from `path` or `key`;
    - `dataset` reads an upload (POST /api/v1/datasets) by its `dataset_id`.

    Images may be `resize`d (center-cropped to a square first) and converted to `channels`
    (1 grey, 3 RGB; default: 1 when every image is grey, else 3); either one says the data
    is images. `shape` is one sample's shape, `[d]` for points and `[channels, size, size]`
    for images: the worker fills it in from the data when the spec leaves it open (so
    checkpoints carry it), and a spec may give it to insist on one.

    An `images` folder or `dataset` stored as shards (a `shards.json` index beside tar
    shards) is streamed rather than read into memory, by `loader_workers` processes per rank
    (default 2, fewer when the rank's share of cores is smaller; 0 decodes in the rank).
    """

    source: DataSource
    path: Annotated[str, Field(max_length=MAX_PATH_LENGTH)] | None = None
    key: Annotated[str, Field(max_length=MAX_KEY_LENGTH)] | None = None
    dataset_id: str | None = None
    resize: ImageSize | None = None
    channels: Literal[1, 3] | None = None
    shape: tuple[StrictInt, ...] | None = None
    loader_workers: Annotated[StrictInt, Field(ge=0, le=MAX_LOADER_WORKERS)] | None = None

    @model_validator(mode="after")
    def _location_matches_source(self) -> DataSpec:
        located = (self.path is not None) + (self.key is not None)
        if self.source in TOY_POINT_DIMS:
            given = [
                name
                for name in (
                    "path",
                    "key",
                    "dataset_id",
                    "resize",
                    "channels",
                    "shape",
                    "loader_workers",
                )
                if getattr(self, name) is not None
            ]
            if given:
                raise ValueError(f"{self.source} is generated: give none of {', '.join(given)}")
        elif self.source == "dataset":
            if self.dataset_id is None or located:
                raise ValueError("dataset needs dataset_id (an upload's id), and no path or key")
        else:
            if self.dataset_id is not None:
                raise ValueError(f"dataset_id goes with source dataset, not {self.source}")
            if located != 1:
                raise ValueError(
                    f"{self.source} needs exactly one of path (on the worker) or key (in the store)"
                )
        if self.key is not None and not is_dataset_key(self.key):
            raise ValueError(
                f"key must be a store prefix under datasets/ (letters, digits, . _ - /), got "
                f"{self.key!r}"
            )
        if self.dataset_id is not None and not _DATASET_ID.fullmatch(self.dataset_id):
            raise ValueError(f"dataset_id must be 32 hex characters, got {self.dataset_id!r}")
        if self.shape is not None:
            self._check_shape(self.shape)
        return self

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        if self.source == "mnist":
            raise ValueError("mnist's shape follows from resize and channels; give no shape")
        points = len(shape) == 1 and shape[0] in POINT_DIMS
        images = len(shape) == 3 and shape[0] in (1, 3) and shape[1] == shape[2] in IMAGE_SIZES
        if not (points or images):
            raise ValueError(
                f"shape must be [d] (d = 1 or 2) for points or [channels, size, size] "
                f"(channels 1 or 3, size {IMAGE_SIZES_TEXT}) for images, got {list(shape)}"
            )
        if points and (self.source == "images" or self.resize or self.channels):
            raise ValueError(f"shape {list(shape)} is points, but the data here is images")
        if images and self.channels not in (None, shape[0]):
            raise ValueError(f"shape {list(shape)} disagrees with channels {self.channels}")
        if images and self.resize not in (None, shape[1]):
            raise ValueError(f"shape {list(shape)} disagrees with resize {self.resize}")

    @property
    def sample_shape(self) -> tuple[int, ...] | None:
        """One sample's shape when the spec alone tells it, else None (known once loaded)."""
        if self.source in TOY_POINT_DIMS:
            return (TOY_POINT_DIMS[self.source],)
        if self.shape is not None:
            return self.shape
        if self.source == "mnist":
            side = self.resize or MNIST_SIDE
            return (self.channels or 1, side, side)
        if self.resize is not None and self.channels is not None:
            return (self.channels, self.resize, self.resize)
        return None

    @property
    def is_image(self) -> bool:
        """Known to be images from the spec alone (an npz may be either until loaded)."""
        if self.source in ("mnist", "images") or self.resize or self.channels:
            return True
        shape = self.sample_shape
        return shape is not None and len(shape) == 3

    @property
    def is_grey_mnist(self) -> bool:
        """MNIST kept grey, at any size: what the digit classifier scores (generated images
        are scaled down to its 28 px first)."""
        return self.source == "mnist" and self.channels in (None, 1)

    @property
    def is_points(self) -> bool:
        """Known to be points from the spec alone."""
        shape = self.sample_shape
        return shape is not None and len(shape) == 1
