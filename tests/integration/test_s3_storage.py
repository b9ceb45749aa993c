"""The S3 backend against a real S3 HTTP endpoint (moto's server): signing, multipart uploads,
paging and presigned URLs all go over the wire as they would to MinIO or AWS."""

from __future__ import annotations

import hashlib
import io
import os
import re
import socket
from pathlib import Path

import boto3
import pytest
import requests
from botocore.config import Config

from shared.config import Settings
from shared.storage import open_storage, s3
from shared.storage.base import ObjectInfo, ObjectNotFoundError, StorageError
from shared.storage.local import LocalStorage
from shared.storage.s3 import S3Storage

KEY = "jobs/0123456789abcdef0123456789abcdef/checkpoints/step-000500.pt"


@pytest.fixture
def storage(s3_endpoint: str, s3_bucket: str) -> S3Storage:
    return S3Storage(s3_bucket, prefix="ganforge", endpoint_url=s3_endpoint)


def test_put_then_get_returns_the_same_bytes_under_the_configured_prefix(
    storage: S3Storage, s3_endpoint: str
) -> None:
    assert storage.put(KEY, b"weights") == ObjectInfo(key=KEY, size=7)
    assert storage.get(KEY) == b"weights"
    raw = boto3.client("s3", endpoint_url=s3_endpoint)
    assert raw.get_object(Bucket=storage.bucket, Key=f"ganforge/{KEY}")["Body"].read() == (
        b"weights"
    )


def test_put_of_a_file_object_reports_its_size(storage: S3Storage) -> None:
    stream = io.BytesIO(b"skip-this|upload this")
    stream.seek(len(b"skip-this|"))
    assert storage.put(KEY, stream).size == len(b"upload this")
    assert storage.get(KEY) == b"upload this"


def test_put_of_an_unseekable_stream_asks_s3_for_the_size(storage: S3Storage) -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"from a pipe")
    os.close(write_fd)
    with open(read_fd, "rb", buffering=0) as pipe:
        assert storage.put(KEY, pipe).size == len(b"from a pipe")
    assert storage.get(KEY) == b"from a pipe"


def test_put_replaces_an_existing_object(storage: S3Storage) -> None:
    storage.put(KEY, b"first")
    storage.put(KEY, b"second")
    assert storage.get(KEY) == b"second"


def test_an_object_over_the_threshold_goes_up_in_parts_and_streams_back_in_chunks(
    storage: S3Storage, s3_endpoint: str, tmp_path: Path
) -> None:
    data = os.urandom(2 * s3.MULTIPART_CHUNKSIZE + 1024)  # just over 16 MiB: three parts
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(data)
    with path.open("rb") as f:
        assert storage.put(KEY, f).size == len(data)

    raw = boto3.client("s3", endpoint_url=s3_endpoint)
    etag = raw.head_object(Bucket=storage.bucket, Key=f"ganforge/{KEY}")["ETag"]
    assert etag.strip('"').endswith("-3")  # S3 marks multipart ETags with the part count
    chunks = list(storage.open(KEY))
    assert max(len(chunk) for chunk in chunks) <= s3.CHUNK_SIZE
    assert b"".join(chunks) == data


def test_a_view_of_memory_goes_up_as_it_is_can_be_sent_again_and_is_hashed_by_s3(
    storage: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node agent stores a sealed checkpoint from its mapping, as a memoryview: in one
    PUT whose SHA-256 S3 checks and returns, or above VERIFIED_PUT_MAX_BYTES in parts."""
    data = os.urandom(s3.MULTIPART_CHUNKSIZE + 4096)
    view = memoryview(bytearray(data))
    calls: list[str] = []
    storage.client.meta.events.register(
        "before-call.s3.*", lambda model, **_: calls.append(model.name)
    )
    for _ in range(2):  # a retry sends the same view again, from its start
        stored = storage.put(KEY, view)
        assert stored.size == len(data) and stored.sha256 == hashlib.sha256(data).hexdigest()
        assert storage.get(KEY) == data
    assert calls.count("PutObject") == 2 and "UploadPart" not in calls
    monkeypatch.setattr(s3, "VERIFIED_PUT_MAX_BYTES", 1024)
    stored = storage.put(KEY, view)
    assert stored.size == len(data) and stored.sha256 is None, "parts: the caller hashes"
    assert "UploadPart" in calls and storage.get(KEY) == data
    assert storage.put(KEY, io.BytesIO(data)).sha256 is None  # a stream: not hashed here


def test_list_pages_through_all_objects_under_the_prefix_sorted_by_key(
    s3_endpoint: str, s3_bucket: str
) -> None:
    client = s3.make_client(s3_endpoint)
    list_calls = []
    client.meta.events.register("before-call.s3.ListObjectsV2", lambda **_: list_calls.append(1))
    storage = S3Storage(s3_bucket, prefix="p", client=client, list_page_size=2)
    keys = [f"jobs/a/samples/step-{i:06d}.png" for i in (4, 0, 3, 1, 2)]
    for key in keys:
        storage.put(key, b"png")
    storage.put("jobs/b/log.txt", b"log")
    S3Storage(s3_bucket, client=client).put("jobs/a/outside-the-prefix", b"")

    listed = storage.list("jobs/a/")
    assert listed == [ObjectInfo(key, 3) for key in sorted(keys)]
    assert len(list_calls) == 3  # 5 objects, 2 a page
    assert [info.key for info in storage.list("jobs/")][-1] == "jobs/b/log.txt"
    assert storage.list("jobs/c/") == []


def test_delete_removes_the_object_and_a_missing_key_is_not_an_error(
    storage: S3Storage,
) -> None:
    storage.put(KEY, b"x")
    storage.delete(KEY)
    storage.delete(KEY)
    assert storage.list("") == []


def test_get_and_open_of_a_missing_key_raise_object_not_found_naming_it(
    storage: S3Storage,
) -> None:
    with pytest.raises(ObjectNotFoundError, match=re.escape(f"{storage.bucket}/ganforge/{KEY}")):
        storage.get(KEY)
    with pytest.raises(ObjectNotFoundError):
        storage.open(KEY)  # raised at the call, before any chunk is read


def test_a_presigned_url_downloads_the_bytes_without_credentials(storage: S3Storage) -> None:
    storage.put(KEY, b"direct download")
    url = storage.url(KEY)
    assert url is not None
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == b"direct download"


def test_presigned_urls_expire_after_at_most_seven_days(storage: S3Storage) -> None:
    url = storage.url(KEY, expires_s=30 * 24 * 3600)
    assert url is not None
    assert f"X-Amz-Expires={s3.MAX_URL_EXPIRY_S}" in url


def test_check_passes_for_an_existing_bucket(storage: S3Storage, s3_endpoint: str) -> None:
    raw = boto3.client("s3", endpoint_url=s3_endpoint)

    def everything() -> list[tuple[str, int]]:  # the whole bucket, prefix or not
        listed = raw.list_objects_v2(Bucket=storage.bucket).get("Contents", [])
        return [(item["Key"], item["Size"]) for item in listed]

    storage.put(KEY, b"before")
    assert storage.check() is None
    # It only looks: nothing written or removed, and the store works as before.
    assert everything() == [(f"ganforge/{KEY}", len(b"before"))]
    assert storage.put(KEY, b"after the check") == ObjectInfo(key=KEY, size=15)
    assert storage.get(KEY) == b"after the check"
    # It looks now, not once: the same store fails the check once its bucket is gone.
    raw.delete_object(Bucket=storage.bucket, Key=f"ganforge/{KEY}")
    raw.delete_bucket(Bucket=storage.bucket)
    with pytest.raises(StorageError, match=re.escape(f"bucket {storage.bucket!r} does not exist")):
        storage.check()


def test_a_missing_bucket_raises_storage_error_naming_it(s3_endpoint: str) -> None:
    storage = S3Storage("no-such-bucket-here", endpoint_url=s3_endpoint)
    for operation in (
        storage.check,
        lambda: storage.put(KEY, b"x"),
        lambda: storage.get(KEY),
        lambda: storage.list(""),
    ):
        with pytest.raises(StorageError, match="no-such-bucket-here") as raised:
            operation()
        assert not isinstance(raised.value, ObjectNotFoundError)


def test_an_unreachable_endpoint_raises_storage_error(s3_bucket: str) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # One attempt: the default retries would only add backoff time to this test.
    client = boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{port}", config=Config(retries={"max_attempts": 1})
    )
    with pytest.raises(StorageError, match=s3_bucket):
        S3Storage(s3_bucket, client=client).check()


def test_open_storage_picks_the_backend_the_storage_url_names(
    s3_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    settings = Settings.from_env(
        {
            "GANFORGE_HOME": str(tmp_path),
            "GANFORGE_STORAGE_URL": f"s3://{s3_bucket}/team/ganforge/",
            "GANFORGE_S3_ENDPOINT_URL": s3_endpoint,
        }
    )
    backend = open_storage(settings)
    assert isinstance(backend, S3Storage)
    assert (backend.bucket, backend.prefix) == (s3_bucket, "team/ganforge/")
    backend.put(KEY, b"via settings")
    assert backend.get(KEY) == b"via settings"

    local = open_storage(settings.with_(storage_url=(tmp_path / "artifacts").as_uri()))
    assert isinstance(local, LocalStorage)
    assert local.root == (tmp_path / "artifacts").resolve()
