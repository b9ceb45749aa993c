"""Class labels that come with training data, for conditional GANs: MNIST's labels file, an
.npz's `labels` array, the class sub-folders of an image folder or archive.

Labels are int64 [N], one per sample in the order the samples are loaded (worker/gan/data.py),
numbered 0 to classes - 1. A source without labels gives None: whether that is an error is
the caller's to say (only a conditional model needs them).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from shared.datafiles.confine import open_file
from shared.datafiles.formats import NPZ_LABELS_ARRAY, DataFileError, read_idx1
from shared.datafiles.images import image_members
from shared.datafiles.shards import folder_classes
from shared.specs.model import MAX_CLASSES


def mnist_labels_path(images_path: Path) -> Path:
    """Where MNIST's labels file for `images_path` lies: `...-labels-idx1-ubyte[.gz]` beside
    `...-images-idx3-ubyte[.gz]` (the dotted mirror names alike)."""
    name = images_path.name.replace("-images-idx3", "-labels-idx1")
    return images_path.with_name(name.replace("-images.idx3", "-labels.idx1"))


def read_mnist_labels(images_path: Path) -> Tensor | None:
    """The labels of an MNIST images file, from the labels file beside it; None without one."""
    path = mnist_labels_path(images_path)
    if not path.is_file():
        return None
    return torch.from_numpy(read_idx1(path, path.name).astype(np.int64))


def read_npz_labels(path: Path, label: str) -> Tensor | None:
    """An .npz's `labels` array as int64 [N]; None when it has none. DataFileError for labels
    that are not one non-negative integer per sample."""
    try:
        with open_file(path, label) as raw, np.load(raw, allow_pickle=False) as npz:
            if NPZ_LABELS_ARRAY not in npz.files:
                return None
            labels = npz[NPZ_LABELS_ARRAY]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DataFileError(f"{label}: not a readable .npz ({exc})") from exc
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataFileError(
            f"{label}: `labels` must be one integer per sample, [N], got {list(labels.shape)} "
            f"{labels.dtype}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= MAX_CLASSES):
        raise DataFileError(f"{label}: `labels` must lie in 0-{MAX_CLASSES - 1}")
    return torch.from_numpy(labels.astype(np.int64))


def read_folder_labels(path: Path, label: str) -> Tensor | None:
    """Labels from the sub-folder each image lies in (`3/0001.png` is class "3"), classes
    numbered in sorted order of their names, as torchvision's ImageFolder does; images are in
    `image_members`' order, the order `read_images` loads them. None unless every image lies
    in a sub-folder and there are at least two of them."""
    found = folder_classes([member.name for member in image_members(path, label)], label)
    return None if found is None else torch.tensor(found[1], dtype=torch.int64)


def class_count(labels: Tensor) -> int:
    """How many classes `labels` number: the largest label + 1."""
    return int(labels.max()) + 1
