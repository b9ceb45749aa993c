"""Uploads stored as shards: on request or past the size threshold, fetched by the agent like
any upload, streamed by the engine, deleted whole."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from flask.testing import FlaskClient

from cli import main
from shared.config import Settings
from shared.datafiles.images import read_images
from shared.datafiles.shard_index import read_index
from shared.specs import TrainSpec
from shared.storage import open_storage
from tests.data_builders import image_bytes, write_npz, write_zip
from tests.helpers import auth
from worker.agent.inputs import fetch_data
from worker.agent.shard_cache import ShardCache
from worker.gan.data import open_data, resolve_data, with_classes

PROBLEM = "application/problem+json"


def _upload(client: FlaskClient, token: str, path: Path, shards: str | None = None) -> Any:
    form: dict[str, Any] = {"file": (io.BytesIO(path.read_bytes()), path.name), "name": "d"}
    if shards is not None:
        form["shards"] = shards
    return client.post(
        "/api/v1/datasets", data=form, headers=auth(token), content_type="multipart/form-data"
    )


def _two_classes(tmp_path: Path) -> Path:
    members = {
        f"{kind}/{i}.png": image_bytes(32, value=40 * number + i)
        for number, kind in enumerate(("a", "b"))
        for i in range(4)
    }
    return write_zip(tmp_path / "pets.zip", members)


def test_an_archive_uploaded_with_shards_is_stored_fetched_and_streamed_as_shards(
    client: FlaskClient, alice: str, settings: Settings, tmp_path: Path
) -> None:
    archive = _two_classes(tmp_path)
    response = _upload(client, alice, archive, shards="true")
    assert response.status_code == 201, response.get_json()
    dataset = response.get_json()
    assert (dataset["format"], dataset["items"], dataset["shape"]) == ("shards", 8, [1, 32, 32])
    store, prefix = open_storage(settings), f"uploads/{dataset['id']}/"
    stored = sorted(found.key.removeprefix(prefix) for found in store.list(prefix))
    assert stored == ["shard-000000.tar", "shards.json"]  # no copy of the archive

    spec = TrainSpec.model_validate(
        {
            "model": {"family": "dcgan", "width": 4, "conditional": True},
            "data": {"source": "dataset", "dataset_id": dataset["id"], "loader_workers": 0},
            "train": {"batch_size": 8},
        }
    )
    # As the node agent hands them over: linked from the node's shard cache.
    cache = ShardCache.for_node(settings, store)
    folder = fetch_data(spec.data, store, tmp_path / "inputs", shards=cache)
    assert (cache.used.misses, cache.used.hits) == (2, 0)  # the index and the one shard
    spec = with_classes(resolve_data(spec, folder), folder)
    assert (spec.data.shape, spec.model.classes) == ((1, 32, 32), 2)
    source = open_data(spec, folder, 0, 1)  # one batch of 8: the whole epoch
    pixels = ((source.batch(1) + 1) * 127.5).round().to(torch.uint8).numpy()
    got = {
        bytes(image): int(label)
        for image, label in zip(pixels, source.batch_labels(1), strict=True)
    }
    expected = read_images(archive, None, None, 1).transpose(0, 3, 1, 2)
    assert got == {bytes(image): number // 4 for number, image in enumerate(expected)}

    url = f"/api/v1/datasets/{dataset['id']}"
    assert client.delete(url, headers=auth(alice)).status_code == 204
    assert store.list(prefix) == []


def test_an_upload_past_the_threshold_is_sharded_unless_it_says_no(
    client: FlaskClient, alice: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = _two_classes(tmp_path)
    assert _upload(client, alice, archive).get_json()["format"] == "zip"
    monkeypatch.setattr("shared.datasets.SHARD_UPLOADS_FROM_BYTES", 8 * 32 * 32 - 1)
    assert _upload(client, alice, archive).get_json()["format"] == "shards"
    assert _upload(client, alice, archive, shards="false").get_json()["format"] == "zip"


@pytest.mark.parametrize("shards", ["maybe", "true"], ids=["not-a-flag", "points"])
def test_a_bad_shards_field_or_sharding_points_is_422_naming_shards(
    client: FlaskClient, alice: str, tmp_path: Path, shards: str
) -> None:
    points = write_npz(tmp_path / "ring.npz", data=np.zeros((10, 2), np.float32))
    response = _upload(client, alice, points, shards=shards)
    assert response.status_code == 422 and response.mimetype == PROBLEM
    error = response.get_json()["errors"][0]
    reason = "must be true or false" if shards == "maybe" else "only archives of images"
    assert error["path"] == "shards" and reason in error["message"]
    assert client.get("/api/v1/datasets", headers=auth(alice)).get_json()["datasets"] == []


def test_the_cli_writes_a_local_folder_as_shards_once(tmp_path: Path) -> None:
    source = tmp_path / "faces"
    for name in ("happy", "sad"):
        (source / name).mkdir(parents=True)
        (source / name / "1.png").write_bytes(image_bytes(28, value=len(name)))
    (source / "sad" / "2.png").write_bytes(image_bytes(28, value=9))
    out = tmp_path / "out"
    command = ["datasets", "shard", str(source), str(out), "--images-per-shard", "2"]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 0, result.output
    assert "3 images in 2 shards, 2 classes" in result.output
    index = read_index(out)
    assert (index.counts, index.classes) == ([2, 1], ["happy", "sad"])
    again = CliRunner().invoke(main, command)
    assert again.exit_code == 2 and "is not empty" in again.output
