from __future__ import annotations

import gzip
import hashlib
import math
import struct
from pathlib import Path

import pytest
import torch
from gan_testing import MNIST_DIR, mnist_spec, ring_spec

from worker.gan.data import (
    RING8_STD,
    MnistSource,
    Ring8Source,
    open_data,
    ring8_modes,
)
from worker.gan.errors import DataError
from worker.gan.mnist_files import load_mnist_images


def _write_idx3(path: Path, count: int, side: int = 28, magic: int = 0x803) -> None:
    payload = struct.pack(">IIII", magic, count, side, side) + bytes(count * side * side)
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)


def test_ring8_has_eight_distinct_modes_on_the_unit_circle() -> None:
    modes = ring8_modes()
    assert modes.shape == (8, 2)
    assert torch.allclose(modes.norm(dim=1), torch.ones(8))
    distances = torch.cdist(modes, modes) + torch.eye(8) * 10
    neighbour = 2 * math.sin(math.pi / 8)
    assert distances.min().item() == pytest.approx(neighbour, rel=1e-5)


def test_ring8_batches_sit_on_the_modes_and_repeat_by_step() -> None:
    source = Ring8Source(seed=1, rank=0, batch_size=500)
    batch = source.batch(3)
    nearest = torch.cdist(batch, ring8_modes()).min(dim=1).values
    assert nearest.max() < 5 * RING8_STD
    assert torch.equal(Ring8Source(seed=1, rank=0, batch_size=500).batch(3), batch)
    assert not torch.equal(source.batch(4), batch)
    assert not torch.equal(Ring8Source(seed=1, rank=1, batch_size=500).batch(3), batch)


def test_the_shipped_mnist_slice_matches_its_checksums() -> None:
    listed = (MNIST_DIR / "SHA256SUMS").read_text().split()
    sums = dict(zip(listed[1::2], listed[::2], strict=True))
    assert sorted(sums) == sorted(path.name for path in MNIST_DIR.glob("*.gz"))
    for name, digest in sums.items():
        assert hashlib.sha256((MNIST_DIR / name).read_bytes()).hexdigest() == digest, name


def test_the_shipped_mnist_slice_loads_as_4000_uint8_images() -> None:
    images = load_mnist_images(MNIST_DIR)
    assert images.shape == (4000, 28, 28)
    assert images.dtype == torch.uint8
    assert images.max() == 255


def test_a_train_file_is_preferred_over_the_test_file(tmp_path: Path) -> None:
    _write_idx3(tmp_path / "t10k-images-idx3-ubyte.gz", 2)
    _write_idx3(tmp_path / "train-images-idx3-ubyte", 3)
    assert len(load_mnist_images(tmp_path)) == 3


def test_a_wrong_magic_number_is_a_data_error_naming_the_file(tmp_path: Path) -> None:
    _write_idx3(tmp_path / "t10k-images-idx3-ubyte", 2, magic=0x801)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: magic number 0x00000801"):
        load_mnist_images(tmp_path)


def test_a_truncated_file_is_a_data_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    _write_idx3(path, 2)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: .*header promises"):
        load_mnist_images(tmp_path)


def test_a_corrupt_gzip_is_a_data_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: cannot be read"):
        load_mnist_images(tmp_path)


def test_a_folder_without_images_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no \\*-images-idx3-ubyte"):
        load_mnist_images(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_mnist_images(tmp_path / "missing")


def test_two_ranks_take_disjoint_samples_covering_each_epoch() -> None:
    count, batch_size = 200, 4
    images = torch.arange(count, dtype=torch.uint8).view(count, 1, 1).expand(count, 28, 28)
    ranks = [
        MnistSource(images, seed=5, rank=r, world_size=2, batch_size=batch_size) for r in (0, 1)
    ]
    steps_per_epoch = count // (2 * batch_size)

    def indices(source: MnistSource, steps: range) -> list[int]:
        batches = [source.batch(step) for step in steps]
        return [round((x[0, 0, 0].item() + 1) * 127.5) for b in batches for x in b]

    first_epoch = range(1, steps_per_epoch + 1)
    seen = [indices(source, first_epoch) for source in ranks]
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(count))
    second_epoch = range(steps_per_epoch + 1, 2 * steps_per_epoch + 1)
    assert indices(ranks[0], second_epoch) != seen[0]


def test_mnist_batches_are_scaled_to_minus_one_one_and_resume_from_the_step() -> None:
    images = torch.randint(0, 256, (50, 28, 28), dtype=torch.uint8)
    images[0] = 0
    images[1] = 255
    source = MnistSource(images, seed=1, rank=0, world_size=1, batch_size=50)
    batch = source.batch(7)
    assert batch.shape == (50, 1, 28, 28)
    assert batch.min() == -1 and batch.max() == 1
    fresh = MnistSource(images, seed=1, rank=0, world_size=1, batch_size=50)
    assert torch.equal(fresh.batch(7), batch)


def test_per_rank_batch_size_splits_the_global_batch_but_never_below_one() -> None:
    assert open_data(ring_spec(train={"batch_size": 8}), None, 1, 2).batch(1).shape == (4, 2)
    assert open_data(ring_spec(train={"batch_size": 1}), None, 1, 2).batch(1).shape == (1, 2)


def test_mnist_kept_in_the_store_needs_a_local_folder() -> None:
    spec = mnist_spec(data={"source": "mnist", "key": "datasets/mnist"})
    with pytest.raises(DataError, match="pass data_path"):
        open_data(spec, None, 0, 1)
