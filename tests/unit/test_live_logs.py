"""A running job's log.txt and metrics.jsonl reach the store within the flush interval of a
new line, once per interval rather than once per line, and a store that is away neither
stops nor slows the run."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from shared.config import Settings
from shared.storage import ObjectInfo, Storage, StorageUnavailableError, open_storage
from shared.storage.keys import LOG_NAME, METRICS_NAME, artifact_key
from tests.attempts import attempt_of
from tests.unit.job_factories import S, move, running_job
from worker.gan.hooks import ProgressReport
from worker.livelog import LiveUpload
from worker.reporter import JobReporter

# Long enough for a burst of lines to land inside one interval on a busy 2-core machine.
INTERVAL_S = 0.3


class WatchedStore:
    """A store that tells when a key is written, and can be made unreachable."""

    def __init__(self, store: Storage) -> None:
        self.store = store
        self.puts: list[str] = []
        self.gets: list[str] = []
        self.down = False
        self.written = threading.Condition()

    def put(self, key: str, data: bytes | BinaryIO) -> ObjectInfo:
        if self.down:
            raise StorageUnavailableError(f"cannot reach the store for {key}")
        info = self.store.put(key, data)
        with self.written:
            self.puts.append(key)
            self.written.notify_all()
        return info

    def get(self, key: str) -> bytes:
        self.gets.append(key)
        if self.down:
            raise StorageUnavailableError(f"cannot reach the store for {key}")
        return self.store.get(key)

    def wait_for(self, key: str, count: int, timeout_s: float = 10.0) -> None:
        with self.written:
            reached = self.written.wait_for(lambda: self.puts.count(key) >= count, timeout_s)
        assert reached, f"{key} written {self.puts.count(key)} times, expected {count}"

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


@pytest.fixture
def reporter_setup(
    settings: Settings, tmp_path: Path
) -> Iterator[tuple[JobReporter, WatchedStore, str]]:
    job_id = running_job(settings)
    store = WatchedStore(open_storage(settings))
    fast = settings.with_(log_flush_s=INTERVAL_S)
    with attempt_of(fast, store, job_id, 1, tmp_path) as attempt:  # type: ignore[arg-type]
        reporter = attempt.reporter()
        yield reporter, store, job_id
        reporter.close()


def test_a_burst_of_lines_is_uploaded_once_within_the_interval(
    reporter_setup: tuple[JobReporter, WatchedStore, str],
) -> None:
    reporter, store, job_id = reporter_setup
    started = time.monotonic()
    for i in range(200):
        reporter.log(f"line {i}")
    assert time.monotonic() - started < INTERVAL_S, "logging never waits for the store"
    log_key = artifact_key(job_id, LOG_NAME)
    store.wait_for(log_key, 1)
    assert time.monotonic() - started >= INTERVAL_S * 0.9, "not before the interval"
    stored = store.store.get(log_key).decode().splitlines()
    assert len(stored) == 200 and stored[-1].endswith("line 199")
    assert store.puts.count(log_key) == 1, "one upload for the whole burst, not one per line"


def test_progress_reports_upload_the_metrics_series_too(
    reporter_setup: tuple[JobReporter, WatchedStore, str],
) -> None:
    reporter, store, job_id = reporter_setup
    for step in (10, 20):
        metrics = {"Loss/G/loss": 0.7, "Timing/sec_per_step": 0.01}
        reporter.report_progress(ProgressReport(step, 100, 500.0, metrics))
    store.wait_for(artifact_key(job_id, METRICS_NAME), 1)
    series = store.store.get(artifact_key(job_id, METRICS_NAME)).decode().splitlines()
    assert [line.count('"step": ') for line in series] == [1, 1]


def test_a_store_outage_costs_the_run_nothing_and_the_next_interval_catches_up(
    reporter_setup: tuple[JobReporter, WatchedStore, str],
) -> None:
    reporter, store, job_id = reporter_setup
    store.down = True
    started = time.monotonic()
    reporter.log("while the store is away")
    deadline = time.monotonic() + 10
    while reporter._live.failures == 0 and time.monotonic() < deadline:
        time.sleep(0.02)  # the background upload fails on its own thread; nothing to await
    assert reporter._live.failures >= 1
    reporter.log("still training")
    assert time.monotonic() - started < 10
    store.down = False
    log_key = artifact_key(job_id, LOG_NAME)
    store.wait_for(log_key, 1)
    lines = store.store.get(log_key).decode()
    assert "while the store is away" in lines and "still training" in lines


def test_a_flush_uploads_at_once_and_the_live_upload_never_writes_an_older_log(
    reporter_setup: tuple[JobReporter, WatchedStore, str],
) -> None:
    reporter, store, job_id = reporter_setup
    for i in range(50):
        reporter.log(f"line {i}")
    reporter._put_logs(patient=True)  # what a checkpoint's flush does, minus pictures
    log_key = artifact_key(job_id, LOG_NAME)
    assert store.store.get(log_key).decode().count("\n") == 50
    time.sleep(INTERVAL_S * 2)  # nothing new was marked: no second upload is due
    assert store.puts.count(log_key) == 1


def test_the_first_attempt_reads_no_history_and_the_next_keeps_its_lines(
    reporter_setup: tuple[JobReporter, WatchedStore, str], settings: Settings, tmp_path: Path
) -> None:
    first, store, job_id = reporter_setup
    first.log("attempt one speaking")
    first.flush()
    assert store.gets == [], "a first attempt has no earlier log to read back"
    move(settings, job_id, S.RUNNING, S.LOST, S.QUEUED, S.SCHEDULED, S.RUNNING)  # attempt 2
    with attempt_of(settings, store, job_id, 2, tmp_path) as attempt:  # type: ignore[arg-type]
        second = attempt.reporter()
        second.log("attempt two speaking")
        second.flush()
    log_key = artifact_key(job_id, LOG_NAME)
    assert log_key in store.gets
    lines = store.store.get(log_key).decode().splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == [
        "attempt one speaking",
        "attempt two speaking",
    ]


def test_other_ranks_write_nothing(settings: Settings, tmp_path: Path) -> None:
    job_id = running_job(settings)
    store = WatchedStore(open_storage(settings))
    fast = settings.with_(log_flush_s=0.01)
    with attempt_of(fast, store, job_id, 1, tmp_path) as attempt:  # type: ignore[arg-type]
        reporter = attempt.reporter(rank=1)
        reporter.log("rank 1 speaking")
        reporter.flush()
    assert store.puts == []


def test_live_upload_waits_the_interval_from_the_oldest_unsent_line() -> None:
    uploaded = threading.Event()
    times: list[float] = []

    def upload() -> None:
        times.append(time.monotonic())
        uploaded.set()

    live = LiveUpload(upload, interval_s=0.2)
    first = time.monotonic()
    live.mark()
    time.sleep(0.1)
    live.mark()  # a later line does not push the upload back
    assert uploaded.wait(5)
    live.close()
    assert 0.2 * 0.9 <= times[0] - first < 0.2 + 1.0
