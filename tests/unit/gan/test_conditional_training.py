"""Conditional training: labels that come with the data (MNIST's labels file, an .npz's
`labels`, class sub-folders), drawn with their batch, and a run that resumes bit for bit."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from gan_testing import RecordingHooks, assert_bitwise_equal, mnist_spec, stop_then_resume

from shared.specs import TrainSpec
from tests.data_builders import grey_pngs, write_npz, write_zip
from tests.helpers import MNIST_DIR
from worker.gan.checkpoint import checkpoint_spec
from worker.gan.data import (
    ArraySource,
    load_labels,
    open_data,
    resolve_data,
    with_classes,
)
from worker.gan.errors import DataError
from worker.gan.mnist_files import load_mnist_labelled
from worker.gan.train import train

CONDITIONAL_DCGAN = {"family": "dcgan", "width": 4, "conditional": True}


def _conditional(family: str, data: dict[str, Any]) -> TrainSpec:
    return TrainSpec.model_validate(
        {
            "model": {"family": family, "width": 4, "conditional": True},
            "latent": {"dim": 4},
            "data": data,
            "train": {"steps": 2, "batch_size": 4, "seed": 3},
            "checkpoint_every": 2,
            "sample_every": 2,
        }
    )


@pytest.mark.slow  # trains for seconds: in `make test`, not `make test-fast`
def test_a_conditional_dcgan_on_mnist_resumes_bitwise_and_its_checkpoint_knows_the_classes() -> (
    None
):
    spec = mnist_spec(model=CONDITIONAL_DCGAN)
    whole, resumed = stop_then_resume(spec)
    assert resumed.lines[0].startswith("resuming")
    assert_bitwise_equal(whole.last_checkpoint, resumed.last_checkpoint)
    assert whole.samples[-1] == resumed.samples[-1]
    trained = checkpoint_spec(whole.last_checkpoint).model
    assert (trained.conditional, trained.classes) == (True, 10)
    assert "embed.weight" in whole.last_checkpoint["discriminator"]
    final = whole.evaluations[-1][1]
    assert final["class_accuracy_samples"] == final["class_samples"] == 10_000
    assert sum(final["per_class_samples"]) == 10_000
    assert 0 <= final["class_accuracy"] <= 1 and len(final["per_class_accuracy"]) == 10


def test_each_batch_brings_the_labels_of_its_own_images() -> None:
    spec = with_classes(mnist_spec(model=CONDITIONAL_DCGAN, train={"batch_size": 16}), None)
    source = open_data(spec, None, rank=0, world_size=1)
    assert isinstance(source, ArraySource)
    images, labels = load_mnist_labelled(MNIST_DIR)
    pixels = images.float() / 127.5 - 1
    for step in (1, 2, source.steps_per_epoch + 1):  # a later epoch, in another order
        batch, batch_labels = source.batch(step), source.batch_labels(step)
        rows = [int(torch.nonzero((pixels == image[0]).all(dim=(1, 2)))[0]) for image in batch]
        assert batch_labels.tolist() == labels[rows].tolist()


def test_an_npz_labels_array_numbers_the_classes_and_trains_a_conditional_mlp(
    tmp_path: Path,
) -> None:
    points = np.random.default_rng(0).normal(size=(600, 2)).astype(np.float32)
    labels = np.arange(600) % 3
    # The data array may have any name: the `labels` beside it is never taken for it.
    path = write_npz(tmp_path / "p.npz", points=points, labels=labels)
    data = {"source": "npz", "path": str(path)}
    spec = with_classes(resolve_data(_conditional("mlp", data), None), None)
    assert spec.model.classes == 3
    source = open_data(spec, None, rank=0, world_size=1)
    assert isinstance(source, ArraySource)
    assert len(source.samples) == 480  # 120 held back for evaluations, with their labels
    batch, batch_labels = source.batch(1), source.batch_labels(1)
    for point, label in zip(batch, batch_labels, strict=True):
        row = int(np.flatnonzero((points == point.numpy()).all(axis=1))[0])
        assert label == labels[row]
    hooks = RecordingHooks()
    assert train(spec, hooks=hooks).step == 2
    assert checkpoint_spec(hooks.last_checkpoint).model.classes == 3


def test_class_sub_folders_of_an_archive_are_its_classes_in_name_order(tmp_path: Path) -> None:
    members = {
        **{f"zebra/{name}": data for name, data in grey_pngs(3, prefix="z").items()},
        **{f"ant/{name}": data for name, data in grey_pngs(2, prefix="a").items()},
    }
    path = write_zip(tmp_path / "animals.zip", members)
    spec = _conditional("dcgan", {"source": "images", "path": str(path)})
    labels = load_labels(spec.data, None)
    assert labels is not None and labels.tolist() == [0, 0, 1, 1, 1]  # ant/..., then zebra/...
    flat = write_zip(tmp_path / "flat.zip", grey_pngs(4))
    assert load_labels(spec.data, flat) is None


@pytest.mark.parametrize("kind", ["npz", "mnist"])
def test_conditional_training_on_data_without_labels_fails_fast_naming_the_field(
    kind: str, tmp_path: Path
) -> None:
    if kind == "npz":
        path = write_npz(tmp_path / "p.npz", data=np.zeros((40, 2), np.float32))
        spec = _conditional("mlp", {"source": "npz", "path": str(path)})
    else:
        shutil.copy(MNIST_DIR / "t10k-4000-images-idx3-ubyte.gz", tmp_path)
        spec = _conditional("dcgan", {"source": "mnist", "path": str(tmp_path)})
    with pytest.raises(DataError, match=f"^model.conditional: the {kind} data has no labels"):
        train(spec, hooks=None)  # type: ignore[arg-type]  # fails before any hook is called
