"""Uploads on the real services: a row in PostgreSQL, the file in S3, fetched back by a worker."""

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from shared.config import Settings
from shared.datafiles.shard_index import read_index
from shared.datafiles.shards import write_shards
from shared.specs.data import DataSpec
from shared.storage import Storage, open_storage
from shared.storage.base import ObjectInfo
from shared.storage.keys import dataset_key
from tests.data_builders import grey_pngs, write_tar
from tests.helpers import auth
from worker.agent.inputs import fetch_data
from worker.agent.shard_cache import ShardCache, ShardCacheError


def test_an_upload_lands_in_s3_and_a_worker_fetches_it(
    client: FlaskClient, alice: str, bob: str, settings: Settings, tmp_path: Path
) -> None:
    archive = write_tar(tmp_path / "digits.tar.gz", grey_pngs(3, 28))
    form = {"file": (io.BytesIO(archive.read_bytes()), "digits.tar.gz"), "name": "digits"}
    response = client.post(
        "/api/v1/datasets", data=form, headers=auth(alice), content_type="multipart/form-data"
    )
    assert response.status_code == 201, response.get_json()
    dataset = response.get_json()
    assert dataset["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert client.get(f"/api/v1/datasets/{dataset['id']}", headers=auth(bob)).status_code == 404

    data = DataSpec(source="dataset", dataset_id=dataset["id"])
    folder = fetch_data(data, open_storage(settings), tmp_path / "rank0")
    assert folder is not None
    assert (folder / "digits.tar.gz").read_bytes() == archive.read_bytes()


def test_a_sharded_upload_lands_in_s3_as_shards_and_a_worker_fetches_them(
    client: FlaskClient, alice: str, settings: Settings, tmp_path: Path
) -> None:
    archive = write_tar(tmp_path / "digits.tar", grey_pngs(3, 28))
    form = {"file": (io.BytesIO(archive.read_bytes()), "digits.tar"), "name": "d", "shards": "1"}
    response = client.post(
        "/api/v1/datasets", data=form, headers=auth(alice), content_type="multipart/form-data"
    )
    assert response.status_code == 201, response.get_json()
    dataset = response.get_json()
    assert (dataset["format"], dataset["items"]) == ("shards", 3)

    data = DataSpec(source="dataset", dataset_id=dataset["id"])
    folder = fetch_data(data, open_storage(settings), tmp_path / "rank0")
    assert folder is not None
    assert sorted(path.name for path in folder.iterdir()) == ["shard-000000.tar", "shards.json"]
    assert read_index(folder).counts == [3]
    assert (
        client.delete(f"/api/v1/datasets/{dataset['id']}", headers=auth(alice)).status_code == 204
    )
    assert open_storage(settings).list(f"uploads/{dataset['id']}/") == []


class CountingStore:
    """The real S3 store, noting each object it serves."""

    def __init__(self, store: Storage) -> None:
        self.store, self.served = store, list[str]()

    def list(self, prefix: str) -> list[ObjectInfo]:
        return self.store.list(prefix)

    def open(self, key: str) -> Iterator[bytes]:
        self.served.append(key)
        return self.store.open(key)


def test_a_node_fetches_a_sharded_upload_once_and_again_only_a_shard_rewritten_since(
    client: FlaskClient, alice: str, settings: Settings, tmp_path: Path
) -> None:
    archive = write_tar(tmp_path / "digits.tar", grey_pngs(3, 28))
    form = {"file": (io.BytesIO(archive.read_bytes()), "digits.tar"), "name": "d", "shards": "1"}
    response = client.post(
        "/api/v1/datasets", data=form, headers=auth(alice), content_type="multipart/form-data"
    )
    assert response.status_code == 201, response.get_json()
    dataset_id = response.get_json()["id"]
    store = CountingStore(open_storage(settings))
    data = DataSpec(source="dataset", dataset_id=dataset_id)
    shard_key = dataset_key(dataset_id, "shard-000000.tar")

    def attempt(name: str) -> list[str]:
        cache = ShardCache.for_node(settings, store)  # type: ignore[arg-type]
        folder = fetch_data(data, store, tmp_path / name, shards=cache)  # type: ignore[arg-type]
        assert folder is not None and read_index(folder).counts == [3]
        cache.close()
        served, store.served = store.served, []
        return served

    index_key = dataset_key(dataset_id, "shards.json")
    assert attempt("first") == [index_key, shard_key]
    assert attempt("second") == [], "the node's copies, not a second download"
    # The images rewritten under the same keys (index and shard, as a new upload would):
    rewrite = write_tar(tmp_path / "other.tar", grey_pngs(3, 32))
    index = write_shards(rewrite, tmp_path / "other")
    store.store.put(shard_key, (tmp_path / "other" / index.shards[0].name).read_bytes())
    with pytest.raises(ShardCacheError, match="the dataset's index says"):
        attempt("third")  # the index still names the old shard's digest
    assert store.served == [shard_key]
    store.served = []
    store.store.put(index_key, (tmp_path / "other" / "shards.json").read_bytes())
    assert attempt("fourth") == [index_key, shard_key], "a new version is fetched, not the stale"
