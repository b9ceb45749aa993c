"""Objects in an S3 bucket (AWS, MinIO, or moto in tests) through boto3.

Every boto3/botocore exception stops here and leaves as our `StorageError` (or
`ObjectNotFoundError`) with the bucket and key in its message, so callers never import botocore.
"""

from __future__ import annotations

import base64
import builtins
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from shared.storage.base import (
    VERIFIED_PUT_MAX_BYTES,
    InMemory,
    ObjectInfo,
    ObjectNotFoundError,
    StorageError,
    StorageUnavailableError,
)

# Used when neither AWS_DEFAULT_REGION nor ~/.aws/config names one: MinIO and moto accept any
# region, and us-east-1 is the one AWS signs for without a location constraint.
DEFAULT_REGION = "us-east-1"

# Checkpoints are tens to hundreds of MB: above 8 MiB they go up in 8 MiB parts, which is above
# S3's 5 MB minimum part size, small enough to retry a part cheaply, and gives 10,000 parts
# (S3's maximum) = 80 GB before s3transfer has to widen the parts itself.
MULTIPART_THRESHOLD = 8 * 1024 * 1024
MULTIPART_CHUNKSIZE = 8 * 1024 * 1024

# Streaming download read size, the same as the local backend's.
CHUNK_SIZE = 1024 * 1024

# S3's own maximum page for ListObjectsV2; tests pass a smaller one to exercise paging.
LIST_PAGE_SIZE = 1000

# SigV4 presigned URLs are refused by S3 beyond 7 days.
MAX_URL_EXPIRY_S = 7 * 24 * 3600

# Standard mode retries throttling, 5xx and dropped connections a few times with backoff; a
# longer outage is ridden out above this (shared/storage/retrying.py, in workers).
MAX_ATTEMPTS = 5
# Every call is bounded: a server that does not accept within CONNECT_TIMEOUT_S is down, and
# one that accepts but sends nothing for READ_TIMEOUT_S (paused, wedged) is treated the same.
# 60 s covers the slowest legitimate wait, S3 assembling a large multipart upload.
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0
PROBE_TIMEOUT_S = 2.0

# Error codes that mean "the service, not the request": retried by RetryingStorage.
_UNAVAILABLE_CODES = frozenset(
    {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500", "502"}
)

# Codes S3 uses for a missing object or bucket (HEAD has no body, so only the status code
# comes back).
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class S3Storage:
    """The `Storage` interface on `s3://bucket/prefix`; `url()` gives presigned GET URLs."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        client: Any | None = None,
        list_page_size: int = LIST_PAGE_SIZE,
        public_endpoint_url: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.client = client if client is not None else make_client(endpoint_url)
        # Readiness probes ask once and give up fast: a probe reports the state now, and one
        # stuck behind a paused server for retries x read timeout would report it minutes late.
        self._probe_client = (
            client
            if client is not None
            else make_client(endpoint_url, read_timeout_s=PROBE_TIMEOUT_S, max_attempts=1)
        )
        # The host is part of a presigned URL's signature: sign against the endpoint the
        # *client* will use when it differs from ours (e.g. minio:9000 inside compose).
        self._presign_client = (
            make_client(public_endpoint_url) if public_endpoint_url else self.client
        )
        self.list_page_size = list_page_size
        self._transfer_config = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD,
            multipart_chunksize=MULTIPART_CHUNKSIZE,
            # Not the CRT client, which picks its own part sizes when awscrt is installed.
            preferred_transfer_client="classic",
        )

    def __repr__(self) -> str:
        return f"S3Storage('s3://{self.bucket}/{self.prefix}')"

    def put(self, key: str, data: InMemory | BinaryIO) -> ObjectInfo:
        if isinstance(data, bytes | bytearray | memoryview):
            view = memoryview(data).cast("B")
            if len(view) <= VERIFIED_PUT_MAX_BYTES:
                return self._put_verified(key, view)
        # s3transfer closes the file object it is given; the caller owns `data` (and may
        # send it again after a failed try), so it gets a view whose close() does nothing.
        fileobj: io.IOBase
        if isinstance(data, bytes):
            fileobj = io.BytesIO(data)  # shares the bytes: no copy
        elif isinstance(data, bytearray | memoryview):
            fileobj = _ViewReader(memoryview(data))  # BytesIO would copy them
        else:
            fileobj = _KeptOpen(data)
        size = _remaining_size(fileobj)
        with self._errors("upload", key):
            self.client.upload_fileobj(
                fileobj, self.bucket, self._full(key), Config=self._transfer_config
            )
            if size is None:
                size = self.client.head_object(Bucket=self.bucket, Key=self._full(key))[
                    "ContentLength"
                ]
        return ObjectInfo(key=key, size=size)

    def _put_verified(self, key: str, view: memoryview) -> ObjectInfo:
        """One PUT with the bytes' SHA-256 as its checksum (shared.storage.base
        VERIFIED_PUT_MAX_BYTES); the digest S3 checked comes back in the ObjectInfo, or None
        from a store that does not answer with one."""
        with self._errors("upload", key):
            answer = self.client.put_object(
                Bucket=self.bucket,
                Key=self._full(key),
                Body=_ViewReader(view),  # read without a copy, rewound by a retry
                ChecksumAlgorithm="SHA256",
            )
        checksum = answer.get("ChecksumSHA256")
        sha256 = base64.b64decode(checksum).hex() if checksum else None
        return ObjectInfo(key=key, size=len(view), sha256=sha256)

    def get(self, key: str) -> bytes:
        return b"".join(self.open(key))

    def open(self, key: str) -> Iterator[bytes]:
        # get_object runs now, so a missing key raises at the call rather than at the first
        # chunk (before an HTTP response has started streaming it).
        with self._errors("download", key):
            body = self.client.get_object(Bucket=self.bucket, Key=self._full(key))["Body"]
        return self._chunks(key, body)

    def list(self, prefix: str) -> builtins.list[ObjectInfo]:
        found: builtins.list[ObjectInfo] = []
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket,
            Prefix=self._full(prefix),
            PaginationConfig={"PageSize": self.list_page_size},
        )
        with self._errors("list", prefix):
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"][len(self.prefix) :]
                    found.append(
                        ObjectInfo(
                            key=key,
                            size=item["Size"],
                            modified=item.get("LastModified"),
                            etag=item.get("ETag"),
                        )
                    )
        # S3 already returns UTF-8 binary order (= str order); sorting keeps the promise for
        # S3-compatible stores that might not.
        return sorted(found, key=lambda info: info.key)

    def delete(self, key: str) -> None:
        with self._errors("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=self._full(key))

    def url(self, key: str, expires_s: int = 3600) -> str | None:
        if expires_s <= 0:
            raise ValueError(f"expires_s must be positive, got {expires_s}")
        with self._errors("presign", key):
            return str(
                self._presign_client.generate_presigned_url(
                    "get_object",
                    Params={"Bucket": self.bucket, "Key": self._full(key)},
                    ExpiresIn=min(expires_s, MAX_URL_EXPIRY_S),
                )
            )

    def check(self) -> None:
        """Raise StorageError unless the bucket exists and these credentials may use it."""
        with self._errors("reach bucket"):
            self._probe_client.head_bucket(Bucket=self.bucket)

    def _full(self, key: str) -> str:
        return self.prefix + key

    def _chunks(self, key: str, body: Any) -> Iterator[bytes]:
        # A connection can also drop mid-stream, so the iteration is wrapped as well.
        with self._errors("download", key):
            try:
                yield from body.iter_chunks(CHUNK_SIZE)
            finally:
                body.close()

    @contextmanager
    def _errors(self, action: str, key: str | None = None) -> Iterator[None]:
        """Turn boto3/botocore exceptions into StorageError naming bucket and key."""
        where = (
            f"s3://{self.bucket}/{self._full(key)}" if key is not None else f"s3://{self.bucket}"
        )
        try:
            yield
        except ClientError as e:
            error = e.response.get("Error", {})
            code = str(error.get("Code", "unknown"))
            if code == "NoSuchBucket" or (key is None and code in _NOT_FOUND_CODES):
                raise StorageError(
                    f"cannot {action} {where}: bucket {self.bucket!r} does not exist"
                    f" at {self.client.meta.endpoint_url}"
                ) from e
            if key is not None and code in _NOT_FOUND_CODES:
                raise ObjectNotFoundError(f"no object {where}") from e
            message = error.get("Message") or e
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            unavailable = code in _UNAVAILABLE_CODES or status >= 500
            kind = StorageUnavailableError if unavailable else StorageError
            raise kind(f"cannot {action} {where}: {code}: {message}") from e
        except (BotoConnectionError, HTTPClientError) as e:  # refused, timed out, dropped
            raise StorageUnavailableError(f"cannot {action} {where}: {e}") from e
        except (BotoCoreError, Boto3Error) as e:
            raise StorageError(f"cannot {action} {where}: {e}") from e


def make_client(
    endpoint_url: str | None = None,
    *,
    read_timeout_s: float = READ_TIMEOUT_S,
    max_attempts: int = MAX_ATTEMPTS,
) -> Any:
    """An S3 client for endpoint_url (None: AWS itself), with retries, timeouts and SigV4.

    Credentials and region come from boto3's usual chain (environment, ~/.aws, instance role).
    """
    session = boto3.session.Session()
    config = Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=min(CONNECT_TIMEOUT_S, read_timeout_s),
        read_timeout=read_timeout_s,
        signature_version="s3v4",
        # MinIO and moto serve buckets as paths; virtual-host names (bucket.minio:9000) would
        # need wildcard DNS that such deployments rarely have.
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    return session.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=session.region_name or DEFAULT_REGION,
        config=config,
    )


class _KeptOpen(io.RawIOBase):
    """A file object forwarding reads and seeks to `inner`, whose close() leaves it open."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        try:
            return self.inner.seekable()
        except AttributeError:
            return False

    def read(self, size: int = -1) -> bytes:
        return self.inner.read(size)

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.inner.seek(offset, whence)

    def tell(self) -> int:
        return self.inner.tell()


class _ViewReader(io.RawIOBase):
    """A seekable file over a buffer in memory, read without copying it first."""

    def __init__(self, view: memoryview) -> None:
        self.view, self.position = view.cast("B"), 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        piece = self.view[self.position : self.position + len(buffer)]
        memoryview(buffer).cast("B")[: len(piece)] = piece
        self.position += len(piece)
        return len(piece)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: len(self.view)}[whence]
        self.position = max(0, base + offset)
        return self.position

    def tell(self) -> int:
        return self.position


def _remaining_size(fileobj: BinaryIO | io.IOBase) -> int | None:
    """Bytes left to read in fileobj, or None when it cannot seek (then we ask S3 after)."""
    try:
        if not fileobj.seekable():
            return None
        start = fileobj.tell()
        end = fileobj.seek(0, io.SEEK_END)
        fileobj.seek(start)
    except (AttributeError, OSError):
        return None
    return end - start
