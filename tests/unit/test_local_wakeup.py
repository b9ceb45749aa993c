"""The embedded service's scheduler wake-up: a datagram to an abstract Unix socket named
after GANFORGE_HOME, so a submission is scheduled at once rather than at the next poll.
Linux's abstract namespace, like the rest of the service (memfd seals, Landlock): elsewhere
these fail, as the wake-up does (the scheduler then polls)."""

from __future__ import annotations

import time
from pathlib import Path

from shared.config import Settings
from shared.pool.wakeup import Wakeups, wake_scheduler, wake_scheduler_soon


def _embedded(home: Path) -> Settings:
    return Settings.from_env({"GANFORGE_HOME": str(home)}).with_(scheduler_poll_s=5.0)


def test_a_wake_up_reaches_the_scheduler_of_the_same_home_only(tmp_path: Path) -> None:
    ours, theirs = _embedded(tmp_path / "a"), _embedded(tmp_path / "b")
    assert ours.is_embedded_broker
    assert not wake_scheduler(ours), "no scheduler listening: not sent, no error"
    waiting = Wakeups(ours)
    try:
        assert not wake_scheduler(theirs)  # another home's scheduler is not ours
        for _ in range(3):  # a burst is one pass
            assert wake_scheduler(ours)
        started = time.monotonic()
        assert waiting.wait() is True
        assert time.monotonic() - started < 4.0  # at once, not after the 5 s poll
        waiting.poll_s = 0.05
        assert waiting.wait() is False, "the burst was drained"
        second = Wakeups(ours)  # a second scheduler of the same home polls instead
        assert second._local is None
        second.close()
    finally:
        waiting.close()


def test_a_wake_up_asked_for_in_passing_arrives_from_the_processs_own_thread(
    tmp_path: Path,
) -> None:
    settings = _embedded(tmp_path / "c")
    waiting = Wakeups(settings)
    try:
        started = time.monotonic()
        wake_scheduler_soon(settings, "submitted")  # returns at once; the thread sends it
        assert time.monotonic() - started < 0.5  # no round trip on a busy machine
        assert waiting.wait() is True
        assert time.monotonic() - started < 4.0
    finally:
        waiting.close()
