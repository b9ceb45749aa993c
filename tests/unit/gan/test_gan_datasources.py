"""The data sources beyond ring8 and MNIST: grid25, gauss1d, .npz, image archives, uploads."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from gan_testing import RecordingHooks
from PIL import Image

from shared.specs import TrainSpec
from shared.storage.local import LocalStorage
from tests.data_builders import grey_pngs, image_bytes, write_npz, write_tar, write_zip
from worker.agent.inputs import fetch_data
from worker.channel.link import JobInputError
from worker.gan.checkpoint import checkpoint_spec
from worker.gan.data import (
    open_data,
    point_dim,
    reference_points,
    resolve_data,
)
from worker.gan.errors import DataError
from worker.gan.models import build_discriminator, build_generator
from worker.gan.sample import sample_for_seeds
from worker.gan.toydata import (
    GAUSS1D_MEAN,
    GAUSS1D_STD,
    GRID25_STD,
    grid25_modes,
    toy_distribution,
)
from worker.gan.train import train

DATASET_ID = "0123456789abcdef0123456789abcdef"


def spec_for(family: str, data: dict[str, Any], **train_params: Any) -> TrainSpec:
    return TrainSpec.model_validate(
        {
            "model": {"family": family, "width": 4 if family == "dcgan" else 8},
            "latent": {"dim": 4},
            "data": data,
            "train": {"steps": 2, "batch_size": 4, "seed": 3, **train_params},
            "checkpoint_every": 2,
            "sample_every": 2,
        }
    )


def test_grid25_has_25_modes_on_the_grid_and_batches_near_them() -> None:
    modes = grid25_modes()
    assert modes.shape == (25, 2) and len({tuple(m.tolist()) for m in modes}) == 25
    assert set(modes.flatten().tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}
    source = open_data(spec_for("mlp", {"source": "toy:grid25"}, batch_size=500), None, 0, 1)
    batch = source.batch(1)
    assert batch.shape == (500, 2)
    assert torch.cdist(batch, modes).min(dim=1).values.max() < 5 * GRID25_STD
    assert torch.equal(source.batch(1), batch) and not torch.equal(source.batch(2), batch)


def test_gauss1d_is_a_one_dimensional_gaussian() -> None:
    spec = spec_for("mlp", {"source": "toy:gauss1d"}, batch_size=4000)
    batch = open_data(spec, None, 0, 1).batch(1)
    assert batch.shape == (4000, 1)
    assert batch.mean().item() == pytest.approx(GAUSS1D_MEAN, abs=0.05)
    assert batch.std().item() == pytest.approx(GAUSS1D_STD, abs=0.05)
    distribution = toy_distribution("toy:gauss1d")
    assert distribution.modes.tolist() == [[GAUSS1D_MEAN]] and distribution.std == GAUSS1D_STD
    assert reference_points(spec.data, 10, 0).shape == (10, 1)


def test_the_mlp_follows_the_data_dimension() -> None:
    for source, dim in (("toy:gauss1d", 1), ("toy:grid25", 2)):
        spec = spec_for("mlp", {"source": source})
        assert point_dim(spec.data) == dim
        assert build_generator(spec)(torch.zeros(3, 4)).shape == (3, dim)
        assert build_discriminator(spec)(torch.zeros(3, dim)).shape == (3,)


def test_an_mlp_trains_on_gauss1d_and_draws_its_samples(hooks: RecordingHooks) -> None:
    result = train(spec_for("mlp", {"source": "toy:gauss1d"}), hooks=hooks)
    assert result.step == 2
    assert Image.open(io.BytesIO(hooks.samples[-1][1])).size == (512, 512)


def test_npz_points_resolve_to_their_dimension_and_serve_batches(tmp_path: Path) -> None:
    points = np.arange(40, dtype=np.float32).reshape(20, 2)
    path = write_npz(tmp_path / "p.npz", data=points)
    spec = resolve_data(spec_for("mlp", {"source": "npz", "path": str(path)}), None)
    assert spec.data.shape == (2,) and point_dim(spec.data) == 2
    batch = open_data(spec, None, 0, 1).batch(1)
    assert batch.dtype == torch.float32 and batch.shape == (4, 2)
    assert {tuple(row) for row in batch.tolist()} <= {tuple(row) for row in points.tolist()}


def test_npz_images_train_a_32px_dcgan_whose_checkpoint_knows_the_shape(
    tmp_path: Path, hooks: RecordingHooks
) -> None:
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32), dtype=np.uint8)
    path = write_npz(tmp_path / "faces.npz", images=images)
    spec = resolve_data(spec_for("dcgan", {"source": "npz", "path": str(path)}), None)
    assert spec.data.shape == (1, 32, 32) and spec.data.is_image
    batch = open_data(spec, None, 0, 1).batch(1)
    assert batch.shape == (4, 1, 32, 32) and batch.min() >= -1 and batch.max() <= 1
    train(spec, hooks=hooks)
    checkpoint = hooks.last_checkpoint
    assert checkpoint_spec(checkpoint).data.shape == (1, 32, 32)
    png = sample_for_seeds(checkpoint, [1, 2], torch.device("cpu")).png
    assert Image.open(io.BytesIO(png)).mode == "L"


def test_the_family_check_of_an_npz_happens_once_it_is_read(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "p.npz", data=np.zeros((8, 2), np.float32))
    with pytest.raises(DataError, match=r"samples are \[2\]: .*dcgan needs image data"):
        resolve_data(spec_for("dcgan", {"source": "npz", "path": str(path)}), None)
    images = write_npz(tmp_path / "i.npz", data=np.zeros((8, 28, 28), np.uint8))
    with pytest.raises(DataError, match="mlp needs point data"):
        resolve_data(spec_for("mlp", {"source": "npz", "path": str(images)}), None)


def test_networks_need_a_resolved_shape(tmp_path: Path) -> None:
    spec = spec_for("mlp", {"source": "npz", "path": str(tmp_path / "p.npz")})
    with pytest.raises(DataError, match="resolve_data"):
        build_generator(spec)


def test_an_image_zip_resized_to_rgb_64px(tmp_path: Path) -> None:
    members = {"a.png": image_bytes((80, 60)), "b.jpg": image_bytes(70, "RGB", "JPEG")}
    path = write_zip(tmp_path / "photos.zip", {**members, "README.txt": b"hi"})
    data = {"source": "images", "path": str(path), "resize": 64, "channels": 3}
    spec = resolve_data(spec_for("dcgan", data, batch_size=2), None)
    assert spec.data.sample_shape == (3, 64, 64)
    assert open_data(spec, None, 0, 1).batch(1).shape == (2, 3, 64, 64)
    assert build_generator(spec)(torch.zeros(2, 4)).shape == (2, 3, 64, 64)


def test_an_image_folder_defaults_to_its_own_size_and_colour(tmp_path: Path) -> None:
    folder = tmp_path / "digits"
    folder.mkdir()
    for name, data in grey_pngs(4, 28).items():
        (folder / name).write_bytes(data)
    spec = resolve_data(spec_for("dcgan", {"source": "images", "path": str(folder)}), None)
    assert spec.data.shape == (1, 28, 28)
    assert open_data(spec, None, 0, 1).batch(1).shape == (4, 1, 28, 28)


def test_image_sizes_need_resize_when_mixed_or_unsupported(tmp_path: Path) -> None:
    mixed = write_tar(tmp_path / "mixed.tar.gz", {**grey_pngs(4, 28), "x.png": image_bytes(32)})
    with pytest.raises(DataError, match=r"mixed.tar.gz: images of mixed sizes.*data.resize"):
        resolve_data(spec_for("dcgan", {"source": "images", "path": str(mixed)}), None)
    odd = write_zip(tmp_path / "odd.zip", grey_pngs(4, 40))
    with pytest.raises(DataError, match=r"odd.zip: images are 40x40.*data.resize"):
        resolve_data(spec_for("dcgan", {"source": "images", "path": str(odd)}), None)
    spec = resolve_data(
        spec_for("dcgan", {"source": "images", "path": str(odd), "resize": 32}), None
    )
    assert spec.data.shape == (1, 32, 32)


def test_data_that_differs_from_the_spec_shape_is_a_data_error(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "i.npz", data=np.zeros((8, 32, 32), np.uint8))
    spec = spec_for("dcgan", {"source": "npz", "path": str(path), "shape": [1, 28, 28]})
    with pytest.raises(DataError, match=r"i.npz: samples are \[1, 32, 32\], but spec.data says"):
        open_data(spec, None, 0, 1)


def test_too_few_samples_for_a_global_batch_is_a_data_error(tmp_path: Path) -> None:
    path = write_npz(tmp_path / "tiny.npz", data=np.zeros((3, 2), np.float32))
    spec = resolve_data(spec_for("mlp", {"source": "npz", "path": str(path)}), None)
    with pytest.raises(DataError, match=r"tiny.npz has 3 samples, fewer than one global batch"):
        open_data(spec, None, 0, 1)


def test_an_upload_is_fetched_from_the_store_and_read_by_its_format(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "store")
    archive = write_zip(tmp_path / "digits.zip", grey_pngs(4, 28))
    store.put(f"uploads/{DATASET_ID}/digits.zip", archive.read_bytes())
    spec = spec_for("dcgan", {"source": "dataset", "dataset_id": DATASET_ID})
    folder = fetch_data(spec.data, store, tmp_path / "rank0")
    assert folder is not None and (folder / "digits.zip").read_bytes() == archive.read_bytes()
    spec = resolve_data(spec, folder)
    assert open_data(spec, folder, 0, 1).batch(1).shape == (4, 1, 28, 28)
    store.delete(f"uploads/{DATASET_ID}/digits.zip")
    with pytest.raises(JobInputError, match="no longer stored"):
        fetch_data(spec.data, store, tmp_path / "rank1")


def test_an_npz_kept_under_a_store_key_is_fetched_into_a_folder(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "store")
    points = write_npz(tmp_path / "ring.npz", data=np.zeros((8, 2), np.float32))
    store.put("datasets/ring.npz", points.read_bytes())
    spec = spec_for("mlp", {"source": "npz", "key": "datasets/ring.npz"})
    folder = fetch_data(spec.data, store, tmp_path / "rank0")
    assert open_data(resolve_data(spec, folder), folder, 0, 1).batch(1).shape == (4, 2)
