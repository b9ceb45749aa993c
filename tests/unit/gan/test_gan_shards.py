"""Sharded image datasets: written from a folder, read back, streamed in a seeded order that
splits across ranks and resumes bit for bit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from gan_testing import assert_bitwise_equal, run_two_ranks_with_resume, stop_then_resume

from shared.datafiles.confine import reading_within
from shared.datafiles.images import read_images
from shared.datafiles.shard_index import INDEX_NAME, ShardIndexError, read_index
from shared.datafiles.shards import write_shards
from shared.specs import TrainSpec
from tests.data_builders import image_bytes
from worker.gan.checkpoint import load_checkpoint
from worker.gan.data import open_data, resolve_data, with_classes
from worker.gan.distributed import find_free_port
from worker.gan.errors import DataError
from worker.gan.shard_order import ShardOrder
from worker.gan.shard_reader import ShardReader
from worker.gan.shard_stream import ShardSource, loader_plan

CLASSES = ("cat", "dog", "owl")
PER_CLASS = 12


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """36 distinct 28 px grey PNGs, 12 in each of three class sub-folders."""
    folder = tmp_path_factory.mktemp("images")
    for number, name in enumerate(CLASSES):
        (folder / name).mkdir()
        for i in range(PER_CLASS):
            data = image_bytes(28, value=number * 50 + i * 3)
            (folder / name / f"{i:03d}.png").write_bytes(data)
    return folder


@pytest.fixture(scope="module")
def shards(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder written as shards of 5 images (8 shards, the last one of 1)."""
    out = tmp_path_factory.mktemp("shards")
    write_shards(image_folder, out, images_per_shard=5)
    return out


def _spec(shards: Path, **train: Any) -> TrainSpec:
    return TrainSpec.model_validate(
        {
            "model": {"family": "dcgan", "width": 4, "conditional": True},
            "latent": {"dim": 8},
            "data": {"source": "images", "path": str(shards), "loader_workers": 0},
            "train": {"steps": 12, "batch_size": 4, "seed": 5, **train},
            "checkpoint_every": 10,
            "sample_every": 6,
        }
    )


def test_shards_hold_every_image_and_its_class_folder_as_the_index_says(
    image_folder: Path, shards: Path
) -> None:
    index = read_index(shards)
    assert (index.count, index.counts, index.shape) == (36, [5] * 7 + [1], (1, 28, 28))
    assert index.classes == list(CLASSES)
    reader = ShardReader(shards, index, size=28, channels=1)
    pairs = [(shard, member) for shard, count in enumerate(index.counts) for member in range(count)]
    expected = read_images(image_folder, None, None, 1).transpose(0, 3, 1, 2)
    assert np.array_equal(reader.images(pairs), expected)
    assert reader.labels(pairs).tolist() == [c for c in range(3) for _ in range(PER_CLASS)]
    reader.close()


def test_the_order_is_a_function_of_seed_epoch_rank_and_world_size_alone() -> None:
    counts = [5] * 7 + [1]

    def draws(seed: int, rank: int = 0, world: int = 1) -> list[list[tuple[int, int]]]:
        order = ShardOrder(counts, seed, rank, world, batch_size=4)
        return [order.draw(d) for d in range(1, 19)]  # two epochs of 9 draws

    first = draws(seed=1)
    assert first == draws(seed=1)
    assert first != draws(seed=2)
    assert first[:9] != first[9:]  # each epoch its own order
    # Each draw alone (a fresh order asked out of sequence) gives the same images.
    assert ShardOrder(counts, 1, 0, 1, 4).draw(14) == first[13]
    # A batch mixes shards: the window shuffle, not one shard's neighbours.
    assert max(len({shard for shard, _ in batch}) for batch in first) > 1


def test_two_ranks_split_each_epoch_disjoint_and_cover_all_but_the_last_global_batch() -> None:
    counts = [5] * 7 + [1]  # 36 images, global batch 8: 4 steps an epoch, 4 images left out
    for epoch in range(2):
        seen = []
        for rank in range(2):
            order = ShardOrder(counts, 9, rank, 2, batch_size=4)
            seen.append({p for d in range(1, 5) for p in order.draw(epoch * 4 + d)})
        assert not seen[0] & seen[1]
        assert len(seen[0]) == len(seen[1]) == 16


def test_loader_processes_serve_the_same_batches_as_the_rank_alone_and_resume_anywhere(
    shards: Path,
) -> None:
    def batches(workers: int, start: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        source = ShardSource(
            shards,
            read_index(shards),
            sample_shape=(1, 28, 28),
            seed=7,
            rank=1,
            world_size=2,
            batch_size=3,
            workers=workers,
            labelled=True,
        )
        got = [(source.batch(d), source.batch_labels(d)) for d in range(start, 9)]
        source.close()
        return got

    alone = batches(workers=0, start=1)
    assert_bitwise_equal(batches(workers=2, start=1), alone)
    assert_bitwise_equal(batches(workers=2, start=5), alone[4:])


def test_loader_processes_and_rank_threads_stay_within_the_ranks_share_of_cores() -> None:
    assert loader_plan(2, threads=8) == (2, 6)
    assert loader_plan(4, threads=2) == (1, 1)
    assert loader_plan(2, threads=1) == (0, 1)


@pytest.mark.slow  # trains for seconds: in `make test`, not `make test-fast`
def test_a_conditional_dcgan_on_shards_resumes_bitwise_equal_to_an_unbroken_run(
    shards: Path,
) -> None:
    spec = with_classes(resolve_data(_spec(shards), None), None)
    assert (spec.data.shape, spec.model.classes) == ((1, 28, 28), 3)
    whole, resumed = stop_then_resume(spec)
    assert resumed.lines[0].startswith("resuming")
    assert_bitwise_equal(whole.last_checkpoint, resumed.last_checkpoint)


def test_shards_resized_and_coloured_as_the_spec_asks(shards: Path) -> None:
    spec = _spec(shards).model_copy(deep=True)
    data = {**spec.data.model_dump(exclude_none=True), "resize": 32, "channels": 3}
    spec = resolve_data(TrainSpec.model_validate({**spec.model_dump(), "data": data}), None)
    assert spec.data.sample_shape == (3, 32, 32)
    batch = open_data(spec, None, 0, 1).batch(1)
    assert batch.shape == (4, 3, 32, 32) and -1 <= batch.min() < batch.max() <= 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda index: index["shards"][0].update(count=6), "count: 36, but the shards hold 37"),
        (lambda index: index["shards"][1].update(name="../x.tar"), "shards.1.name: "),
        (lambda index: index.update(channels=2), "channels: "),
    ],
    ids=["counts", "name", "channels"],
)
def test_a_bad_index_fails_naming_the_file_and_field(
    shards: Path, tmp_path: Path, change: Any, field: str
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    index = json.loads((shards / INDEX_NAME).read_text())
    change(index)
    (broken / INDEX_NAME).write_text(json.dumps(index))
    with pytest.raises(ShardIndexError, match=f"^broken/shards.json: {field}"):
        read_index(broken)
    with pytest.raises(DataError, match=f"^broken/shards.json: {field}"):
        resolve_data(_spec(broken), None)


def test_a_shard_that_does_not_hold_what_the_index_says_fails_naming_it(
    shards: Path, tmp_path: Path
) -> None:
    short = tmp_path / "short"
    short.mkdir()
    (short / INDEX_NAME).write_bytes((shards / INDEX_NAME).read_bytes())
    for shard in sorted(shards.glob("shard-*.tar")):
        (short / shard.name).write_bytes(shards.joinpath("shard-000007.tar").read_bytes())
    source = open_data(resolve_data(_spec(short), None), None, 0, 1)
    with pytest.raises(DataError, match=r"^short/shard-00000\d.tar: holds 1 images, the index"):
        source.batch(1)


@pytest.mark.processes  # starts processes: outside `make test-fast`
def test_two_ranks_on_shards_stop_and_resume_bitwise(shards: Path, tmp_path: Path) -> None:
    spec = with_classes(resolve_data(_spec(shards), None), None)
    mp.spawn(
        run_two_ranks_with_resume,
        args=(2, find_free_port(), [spec.model_dump_json()], str(tmp_path), 1),
        nprocs=2,
    )
    whole = load_checkpoint((tmp_path / "0-whole.pt").read_bytes())
    resumed = load_checkpoint((tmp_path / "0-resumed.pt").read_bytes())
    assert len(whole["rng_states"]) == 2
    assert_bitwise_equal(whole, resumed)


def test_a_shard_linked_out_of_the_data_roots_fails_in_the_loader_process_naming_the_field(
    shards: Path, tmp_path: Path
) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "faces").mkdir(parents=True)
    outside.mkdir()
    for file in shards.iterdir():
        (root / "faces" / file.name).write_bytes(file.read_bytes())
    moved = root / "faces" / "shard-000000.tar"
    (outside / moved.name).write_bytes(moved.read_bytes())
    moved.unlink()
    moved.symlink_to(outside / moved.name)
    data = {"source": "images", "path": str(root / "faces"), "loader_workers": 1}
    spec = TrainSpec.model_validate({**_spec(shards).model_dump(), "data": data})
    with reading_within([root], "spec.data.path"):
        spec = resolve_data(spec, None)
        source = ShardSource(
            root / "faces",
            read_index(root / "faces"),
            sample_shape=(1, 28, 28),
            seed=5,
            rank=0,
            world_size=1,
            batch_size=36,  # the whole epoch: shard 0 is read whatever the order
            workers=1,
        )
    with pytest.raises(DataError, match=r"^spec.data.path: faces/shard-000000.tar points outside"):
        source.batch(1)
