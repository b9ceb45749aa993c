"""`ganforge health worker / scheduler`: what the containers' health checks and probes run."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from scheduler.process import run_forever
from shared.config import Settings
from shared.messaging import WorkerAnswer, make_celery, ping_local_worker


def health(settings: Settings, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["health", *args], env=settings.to_env())
    return result.exit_code, result.output


def test_the_scheduler_check_passes_while_the_loop_turns(settings: Settings) -> None:
    stop = threading.Event()
    loop = threading.Thread(target=run_forever, args=(settings, make_celery(settings), stop))
    assert health(settings, "scheduler")[0] == 1, "no heartbeat before the loop starts"
    loop.start()
    try:
        deadline = time.monotonic() + 30
        while not settings.scheduler_heartbeat_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        code, output = health(settings, "scheduler")
        assert code == 0, output
    finally:
        stop.set()
        loop.join(timeout=30)


def test_the_scheduler_check_fails_when_the_loop_stopped_turning(settings: Settings) -> None:
    beat: Path = settings.scheduler_heartbeat_file
    beat.parent.mkdir(parents=True, exist_ok=True)
    beat.touch()
    os.utime(beat, (time.time() - 120, time.time() - 120))
    code, output = health(settings, "scheduler")
    assert code == 1 and "120 s ago" in output
    assert health(settings, "scheduler", "--max-age", "300")[0] == 0


def test_a_worker_that_does_not_answer_is_unhealthy(settings: Settings) -> None:
    named = settings.with_(node_name="gpu-box-1")
    assert ping_local_worker(named, timeout_s=0.5) is WorkerAnswer.SILENT
    code, output = health(named, "worker", "--timeout", "0.5")
    assert code == 1 and "worker: silent" in output


@pytest.mark.parametrize(
    ("answer", "flags", "code"),
    [
        (WorkerAnswer.ANSWERED, [], 0),
        (WorkerAnswer.SILENT, [], 1),
        (WorkerAnswer.SILENT, ["--broker-down-ok"], 1),
        (WorkerAnswer.BROKER_DOWN, [], 1),
        (WorkerAnswer.BROKER_DOWN, ["--broker-down-ok"], 0),
    ],
)
def test_a_liveness_probe_forgives_a_broker_outage_only(
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    answer: WorkerAnswer,
    flags: list[str],
    code: int,
) -> None:
    monkeypatch.setattr("shared.messaging.ping_local_worker", lambda *_: answer)
    assert health(settings, "worker", *flags)[0] == code


def test_an_unreachable_broker_is_told_apart_from_a_silent_worker(settings: Settings) -> None:
    down = settings.with_(broker_url="redis://127.0.0.1:1/0", node_name="gpu-box-1")
    assert ping_local_worker(down, timeout_s=1) is WorkerAnswer.BROKER_DOWN
