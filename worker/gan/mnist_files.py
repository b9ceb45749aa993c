"""MNIST as LeCun ships it, from a folder: which idx3 file holds the images (a train file
before a t10k one), the images as uint8 tensors, and their labels when the idx1 file lies
beside them. The files' formats are read by `shared.datafiles.formats`."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from shared.datafiles import formats as datafiles
from shared.datafiles.confine import list_folder
from shared.specs.data import MNIST_SIDE
from worker.gan.class_labels import mnist_labels_path
from worker.gan.errors import DataError, as_data_error

# Image files we recognise: LeCun's names and the dotted variant common in mirrors.
_MNIST_IMAGES = re.compile(r"-images[-.]idx3-ubyte(\.gz)?$")


def find_mnist_images(folder: Path) -> Path:
    """The images file in `folder`: a train file when there is one, else the t10k one."""
    if not folder.is_dir():
        raise DataError(f"{folder.name}: MNIST folder does not exist")
    with as_data_error():
        names = list_folder(folder, folder.name)
    found = [folder / name for name in names if _MNIST_IMAGES.search(name)]
    train = [path for path in found if path.name.startswith("train")]
    if not found:
        raise DataError(f"{folder.name}: no *-images-idx3-ubyte or *-images-idx3-ubyte.gz file")
    return (train or found)[0]


def load_mnist_labelled(folder: Path) -> tuple[Tensor, Tensor] | None:
    """(images uint8 [N, 28, 28], labels int64 [N]) when the labels file sits beside the
    images (`...-labels-idx1-ubyte[.gz]` for `...-images-idx3-ubyte[.gz]`); else None."""
    images_path = find_mnist_images(folder)
    labels_path = mnist_labels_path(images_path)
    if not labels_path.is_file():
        return None
    with as_data_error():
        images = datafiles.read_idx3(images_path, images_path.name, side=MNIST_SIDE)
        labels = datafiles.read_idx1(labels_path, labels_path.name)
    if len(labels) != len(images):
        return None
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


def load_mnist_images(folder: Path) -> Tensor:
    """MNIST images from the idx3 file in `folder`, as uint8 [N, 28, 28]."""
    path = find_mnist_images(folder)
    with as_data_error():
        return torch.from_numpy(datafiles.read_idx3(path, path.name, side=MNIST_SIDE))
