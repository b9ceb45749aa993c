"""A store that rides out brief outages: every call retried while the store is unreachable.

Workers write checkpoints that hours of training depend on; an S3 server restarting, a load
balancer failing over or a network blip must cost a pause, not the attempt. Only
`StorageUnavailableError` is retried (refused connections, timeouts, 5xx); a missing object,
a missing bucket or refused credentials fail at once, since no wait fixes them.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Iterator
from typing import BinaryIO, TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
    wait_random,
)

from shared.storage.base import InMemory, ObjectInfo, Storage, StorageUnavailableError

log = logging.getLogger(__name__)

T = TypeVar("T")


class RetryingStorage:
    """The `Storage` interface over another store, retrying each call for up to `retry_s`
    (backing off to 10 s between tries); past that the last error is raised."""

    def __init__(
        self, store: Storage, retry_s: float, on_retry: Callable[[str], None] | None = None
    ) -> None:
        self.store = store
        self.retry_s = retry_s
        # Also told of each retry (a worker passes its job log, so the job's owner sees the
        # outage the run waited through, not only the operator's logs).
        self.on_retry = on_retry

    def __repr__(self) -> str:
        return f"RetryingStorage({self.store!r}, retry_s={self.retry_s:g})"

    def put(self, key: str, data: InMemory | BinaryIO) -> ObjectInfo:
        if isinstance(data, bytes | bytearray | memoryview):
            return self._retry(lambda: self.store.put(key, data))
        start = _tell(data)
        if start is None:  # a stream that cannot rewind cannot be sent twice
            return self.store.put(key, data)

        def put_once() -> ObjectInfo:
            data.seek(start)  # a retry sends the file from where the first try began
            return self.store.put(key, data)

        return self._retry(put_once)

    def get(self, key: str) -> bytes:
        return self._retry(lambda: self.store.get(key))

    def open(self, key: str) -> Iterator[bytes]:
        # Only the opening is retried: a stream that breaks halfway cannot be resumed here
        # without repeating bytes the caller already has (callers that need it use get()).
        return self._retry(lambda: self.store.open(key))

    def list(self, prefix: str) -> builtins.list[ObjectInfo]:
        return self._retry(lambda: self.store.list(prefix))

    def delete(self, key: str) -> None:
        self._retry(lambda: self.store.delete(key))

    def url(self, key: str, expires_s: int = 3600) -> str | None:
        return self.store.url(key, expires_s)

    def check(self) -> None:
        self.store.check()  # a probe reports the state now; it must not wait for a recovery

    def _retry(self, call: Callable[[], T]) -> T:
        retrying = Retrying(
            retry=retry_if_exception_type(StorageUnavailableError),
            wait=wait_exponential(multiplier=0.5, max=10) + wait_random(0, 0.5),
            stop=stop_after_delay(self.retry_s),
            before_sleep=self._report,
            reraise=True,
        )
        return retrying(call)

    def _report(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        message = (
            f"storage unreachable (try {state.attempt_number}), retrying in {wait:.1f} s "
            f"for up to {self.retry_s:.0f} s in all: {error}"
        )
        log.warning(message)
        if self.on_retry is not None:
            self.on_retry(message)


def _tell(data: BinaryIO) -> int | None:
    try:
        return data.tell() if data.seekable() else None
    except (AttributeError, OSError):
        return None
