"""The images an `invert` sampling job inverts, read on the worker: some items of an uploaded
dataset, or the cells of a PNG artifact of one of the owner's jobs, as uint8 [N, C, H, W].

The API checked what it could at submission (shared/jobs/inversion_inputs.py); everything is
checked again here, where the bytes are (an artifact may be rewritten, a mixed-size
dataset's sizes are known only once decoded), and a problem is a JobInputError naming the
field. Only the chosen items of an archive are decoded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from shared.datafiles import formats as datafiles
from shared.datafiles.images import (
    MAX_MEMBER_BYTES,
    DataFileError,
    ImageMember,
    decode_image,
    fit_image,
    image_members,
)
from shared.grids import GRID_PADDING, grid_layout
from shared.specs.inversion import ArtifactImages, DatasetImages
from worker.channel.link import AgentLink, JobInputError
from worker.gan.grids import GRID_PAD_VALUE

FIELD = "spec.invert.images"


def load_inversion_images(
    link: AgentLink,
    images: DatasetImages | ArtifactImages,
    shape: tuple[int, ...],
) -> tuple[np.ndarray, list[int]]:
    """The chosen images [N, C, H, W] (uint8) and their positions in the source, for a
    sampling job whose generator makes images of `shape` (C, H, W). A dataset is copied by
    the agent into the attempt's inputs folder to be read."""
    try:
        if isinstance(images, DatasetImages):
            pixels, chosen = _dataset_images(link, images)
        else:
            pixels, chosen = _artifact_images(link, images, shape)
    except DataFileError as unreadable:
        raise JobInputError(f"{FIELD}: {unreadable}") from None
    found = (pixels.shape[3], *pixels.shape[1:3])
    if found != tuple(shape):
        raise JobInputError(
            f"{FIELD}: the images are {list(found)} (channels, height, width); the generator "
            f"makes {list(shape)}"
        )
    return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)), chosen


def _dataset_images(link: AgentLink, images: DatasetImages) -> tuple[np.ndarray, list[int]]:
    dataset, _ = link.call("dataset_file", dataset_id=images.dataset_id, field=FIELD)
    chosen = _chosen(images, int(dataset["items"]))
    path = Path(dataset["path"])
    return _pick(path, str(dataset["filename"]), chosen, dataset["channels"]), chosen


def _pick(path: Path, label: str, chosen: list[int], channels: int | None) -> np.ndarray:
    """Items `chosen` of a data file as uint8 [N, H, W, C], numbered as training reads them."""
    fmt = datafiles.detect_format(label)
    if fmt == "npz":
        kind, array = datafiles.read_npz(path, label)
        if kind != "images":
            raise DataFileError(f"{label} holds points, not images")
        return array[chosen]
    if fmt == "idx":
        return datafiles.read_idx3(path, label)[chosen][..., np.newaxis]
    wanted = set(chosen)
    decoded: dict[int, Image.Image] = {}
    for position, member in enumerate(image_members(path, label)):
        if position in wanted:
            decoded[position] = decode_image(member, label)
    pictures = [decoded[index] for index in chosen]
    if channels is None:  # as training reads it: grey when every image is
        channels = 1 if all(p.mode == "L" for p in pictures) else 3
    return _stack([fit_image(p, None, channels) for p in pictures], label)


def _stack(arrays: list[np.ndarray], label: str) -> np.ndarray:
    sizes = {array.shape[:2] for array in arrays}
    if len(sizes) > 1:
        listed = ", ".join(f"{w}x{h}" for h, w in sorted(sizes))
        raise DataFileError(f"{label}: the chosen images differ in size ({listed})")
    return np.stack(arrays)


def _artifact_images(
    link: AgentLink, images: ArtifactImages, shape: tuple[int, ...]
) -> tuple[np.ndarray, list[int]]:
    found: dict[str, Any] = {"job_id": images.job_id, "name": images.name, "field": FIELD}
    info, _ = link.call("artifact_info", **found)
    if info["size"] > MAX_MEMBER_BYTES:
        raise JobInputError(
            f"{FIELD}.name: {images.name} is {info['size']:,} bytes, too large a PNG"
        )
    _, data = link.call("artifact", **found)
    picture = decode_image(ImageMember(images.name, data), images.name)
    pixels = np.asarray(picture, dtype=np.uint8)
    pixels = pixels[..., np.newaxis] if pixels.ndim == 2 else pixels
    cells = grid_cells(pixels, shape[1], shape[2], images.name)
    chosen = _chosen(images, len(cells))
    return cells[chosen], chosen


def grid_cells(pixels: np.ndarray, height: int, width: int, label: str) -> np.ndarray:
    """The cells [N, height, width, C] of a grid the service drew (worker/gan/grids.py), row
    by row, without the empty cells that end its last row. DataFileError when the picture
    is no grid of cells that size."""
    total_height, total_width = pixels.shape[:2]
    layout = grid_layout(total_width, total_height, width, height)
    if layout is None:
        raise DataFileError(
            f"{label} is {total_width}x{total_height} px, not a grid of {width}x{height} cells "
            f"{GRID_PADDING} px apart (the generator's size, as the service draws grids)"
        )
    rows, columns = layout
    cells = [
        pixels[top : top + height, left : left + width]
        for row in range(rows)
        for column in range(columns)
        for top, left in [
            (GRID_PADDING + row * (height + GRID_PADDING),
             GRID_PADDING + column * (width + GRID_PADDING))
        ]
    ]  # fmt: skip
    while len(cells) > 1 and not (cells[-1] != GRID_PAD_VALUE).any():
        cells.pop()
    return np.stack(cells)


def _chosen(images: DatasetImages | ArtifactImages, available: int) -> list[int]:
    for position, index in enumerate(images.indices or []):
        if index >= available:
            raise JobInputError(
                f"{FIELD}.indices.{position}: {index} is past the last image ({available} images)"
            )
    if images.count is not None and images.count > available:
        raise JobInputError(f"{FIELD}.count: {images.count} asked for; there are {available}")
    return images.chosen(available)
