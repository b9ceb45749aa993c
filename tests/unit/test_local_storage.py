"""The local-folder backend: what the embedded mode keeps its artifacts in."""

from __future__ import annotations

import hashlib
import io
import os
import re
from pathlib import Path

import pytest

from shared.config import Settings
from shared.storage import local, open_storage
from shared.storage.base import ObjectInfo, ObjectNotFoundError, StorageError
from shared.storage.local import LocalStorage

KEY = "jobs/0123456789abcdef0123456789abcdef/checkpoints/step-000500.pt"


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "artifacts")


def test_put_then_get_returns_the_same_bytes(storage: LocalStorage) -> None:
    info = storage.put(KEY, b"weights")
    assert info == ObjectInfo(key=KEY, size=7)
    assert info.sha256 == hashlib.sha256(b"weights").hexdigest()  # as S3Storage's
    assert storage.get(KEY) == b"weights"
    assert (storage.root / KEY).read_bytes() == b"weights"


def test_put_accepts_a_binary_file_object(storage: LocalStorage) -> None:
    info = storage.put(KEY, io.BytesIO(b"from a stream"))
    assert info.size == len(b"from a stream")
    assert storage.get(KEY) == b"from a stream"


def test_put_replaces_an_existing_object_and_leaves_no_temporary_files(
    storage: LocalStorage,
) -> None:
    storage.put(KEY, b"first version, longer")
    storage.put(KEY, b"second")
    assert storage.get(KEY) == b"second"
    assert os.listdir(storage.root / KEY.rpartition("/")[0]) == ["step-000500.pt"]


def test_written_files_get_ordinary_permissions_not_private_temp_file_ones(
    storage: LocalStorage,
) -> None:
    storage.put(KEY, b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert (storage.root / KEY).stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_failed_write_keeps_the_old_object_and_removes_its_temporary_file(
    storage: LocalStorage,
) -> None:
    class BrokenStream(io.RawIOBase):
        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            raise OSError("disk went away")

    storage.put(KEY, b"old")
    with pytest.raises(StorageError, match="disk went away"):
        storage.put(KEY, BrokenStream())  # type: ignore[arg-type]
    assert storage.get(KEY) == b"old"
    assert storage.list("") == [ObjectInfo(KEY, 3)]
    assert len(os.listdir(storage.root / KEY.rpartition("/")[0])) == 1


def test_open_streams_a_large_object_in_chunks(storage: LocalStorage) -> None:
    data = os.urandom(2 * local.CHUNK_SIZE + 10)
    storage.put(KEY, data)
    chunks = list(storage.open(KEY))
    assert [len(chunk) for chunk in chunks] == [local.CHUNK_SIZE, local.CHUNK_SIZE, 10]
    assert b"".join(chunks) == data


def test_list_returns_objects_under_the_prefix_sorted_by_key(storage: LocalStorage) -> None:
    for key in ["jobs/b/log.txt", "jobs/a/samples/step-2.png", "jobs/a/log.txt", "other/x"]:
        storage.put(key, b"12345")
    assert [info.key for info in storage.list("jobs/a/")] == [
        "jobs/a/log.txt",
        "jobs/a/samples/step-2.png",
    ]
    assert [info.key for info in storage.list("jobs/")] == [
        "jobs/a/log.txt",
        "jobs/a/samples/step-2.png",
        "jobs/b/log.txt",
    ]
    assert storage.list("jobs/a/samples/st") == [ObjectInfo("jobs/a/samples/step-2.png", 5)]
    assert len(storage.list("")) == 4


def test_list_of_a_prefix_with_no_objects_is_empty(storage: LocalStorage) -> None:
    assert storage.list("jobs/nothing-here/") == []


def test_delete_removes_the_object_and_a_missing_key_is_not_an_error(
    storage: LocalStorage,
) -> None:
    storage.put(KEY, b"x")
    storage.delete(KEY)
    storage.delete(KEY)
    storage.delete("jobs/never/existed.txt")
    assert storage.list("") == []


def test_get_and_open_of_a_missing_key_raise_object_not_found(storage: LocalStorage) -> None:
    with pytest.raises(ObjectNotFoundError, match=re.escape("step-000500.pt")):
        storage.get(KEY)
    with pytest.raises(ObjectNotFoundError):
        storage.open(KEY)  # raised at the call, before any chunk is read
    storage.put(KEY, b"x")
    with pytest.raises(ObjectNotFoundError):
        storage.get(KEY.rpartition("/")[0])  # a folder is not an object


@pytest.mark.parametrize(
    "key",
    ["", "/etc/passwd", "../outside", "jobs/../../outside", "jobs//x", "jobs/./x", "a\\..\\b"],
)
def test_keys_that_could_escape_the_root_are_refused(storage: LocalStorage, key: str) -> None:
    with pytest.raises(StorageError, match="not a valid storage key"):
        storage.put(key, b"x")
    with pytest.raises(StorageError):
        storage.get(key)
    with pytest.raises(StorageError):
        storage.delete(key)


def test_list_refuses_a_prefix_that_climbs_out_of_the_root(storage: LocalStorage) -> None:
    with pytest.raises(StorageError):
        storage.list("../")


def test_a_symlink_out_of_the_root_is_refused(storage: LocalStorage, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    storage.root.mkdir(parents=True)
    (storage.root / "jobs").symlink_to(outside)
    with pytest.raises(StorageError, match="outside"):
        storage.put("jobs/x", b"x")
    assert not (outside / "x").exists()


def test_url_is_none_so_the_api_streams_the_bytes(storage: LocalStorage) -> None:
    storage.put(KEY, b"x")
    assert storage.url(KEY) is None


def test_check_creates_the_root_and_leaves_nothing_behind(storage: LocalStorage) -> None:
    assert not storage.root.exists()
    storage.check()
    assert storage.root.is_dir()
    assert os.listdir(storage.root) == []


def test_check_raises_storage_error_when_the_root_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    with pytest.raises(StorageError, match="not writable"):
        LocalStorage(blocker / "artifacts").check()


def test_open_storage_gives_the_local_backend_for_the_default_file_url(tmp_path: Path) -> None:
    home = tmp_path / "a home with spaces"
    settings = Settings.from_env({"GANFORGE_HOME": str(home)})
    backend = open_storage(settings)
    assert isinstance(backend, LocalStorage)
    assert backend.root == (home / "artifacts").resolve()
