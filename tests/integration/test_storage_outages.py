"""S3 outages as boto3 sees them, through a proxy in front of the moto server: a store that is
gone or hung is `StorageUnavailableError` within the timeouts, a patient store rides out the
outage, and what cannot be fixed by waiting (a missing bucket) fails at once."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator

import pytest

from shared.storage import StorageError, StorageUnavailableError
from shared.storage.retrying import RetryingStorage
from shared.storage.s3 import S3Storage, make_client
from tests.faultproxy import FaultProxy


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(s3_endpoint)
    yield proxy
    proxy.close()


def _store(proxy: FaultProxy, bucket: str, **client_options: float) -> S3Storage:
    client = make_client(proxy.url, **client_options)  # type: ignore[arg-type]
    return S3Storage(bucket, prefix="outage", client=client)


def test_a_stopped_store_is_unavailable_and_a_missing_bucket_is_not(
    proxy: FaultProxy, s3_bucket: str
) -> None:
    store = _store(proxy, s3_bucket, max_attempts=1)
    store.put("a", b"x")
    proxy.stop()
    with pytest.raises(StorageUnavailableError, match="cannot upload"):
        store.put("b", b"y")
    proxy.start()
    assert store.get("a") == b"x"
    missing = _store(proxy, "no-such-bucket-here", max_attempts=1)
    with pytest.raises(StorageError, match="does not exist") as raised:
        missing.put("a", b"x")
    assert not isinstance(raised.value, StorageUnavailableError)


def test_a_hung_store_times_out_instead_of_holding_the_caller(
    proxy: FaultProxy, s3_bucket: str
) -> None:
    store = _store(proxy, s3_bucket, max_attempts=1, read_timeout_s=1.0)
    proxy.pause()
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError, match=r"timeout|timed out"):
        store.get("anything")
    assert time.monotonic() - started < 5
    proxy.resume()


def test_the_readiness_check_asks_once_and_gives_up_within_its_timeout(
    proxy: FaultProxy, s3_bucket: str
) -> None:
    # The store's own clients, as the API builds them (5 attempts for data, 1 for the probe).
    store = S3Storage(s3_bucket, endpoint_url=proxy.url)
    store.check()
    proxy.pause()
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError):
        store.check()
    assert time.monotonic() - started < 4
    proxy.resume()
    store.check()


def test_a_patient_store_rides_out_an_outage_and_stores_the_whole_object_once(
    proxy: FaultProxy, s3_bucket: str
) -> None:
    store = RetryingStorage(_store(proxy, s3_bucket, max_attempts=1), retry_s=60)
    payload = bytes(range(256)) * 4096  # 1 MiB
    proxy.stop()
    threading.Timer(3.0, proxy.start).start()
    started = time.monotonic()
    info = store.put("checkpoint.pt", io.BytesIO(payload))
    waited = time.monotonic() - started
    assert 3.0 <= waited < 20, f"stored {waited:.1f} s after the outage began"
    assert info.size == len(payload)
    assert store.get("checkpoint.pt") == payload
    assert [o.key for o in store.list("checkpoint")] == ["checkpoint.pt"]


def test_a_patient_store_gives_up_after_its_bound(proxy: FaultProxy, s3_bucket: str) -> None:
    store = RetryingStorage(_store(proxy, s3_bucket, max_attempts=1), retry_s=2)
    proxy.stop()
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError):
        store.put("late", b"x")
    assert 2 <= time.monotonic() - started < 15
    proxy.start()


def test_a_patient_store_does_not_retry_what_waiting_cannot_fix(
    proxy: FaultProxy, s3_endpoint: str
) -> None:
    store = RetryingStorage(_store(proxy, "no-such-bucket-here", max_attempts=1), retry_s=60)
    started = time.monotonic()
    with pytest.raises(StorageError, match="does not exist"):
        store.put("a", b"x")
    assert time.monotonic() - started < 5
