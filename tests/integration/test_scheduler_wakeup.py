"""Wake-ups over the real Redis: a submission is placed at once by a scheduler whose poll is
two minutes away, and a Redis that is down never costs a submission."""

import threading
import time
from collections.abc import Iterator

import pytest
import redis
from flask.testing import FlaskClient

from api.app import create_app
from scheduler.process import run_forever
from shared.config import Settings
from shared.messaging import make_celery
from shared.pool.wakeup import Wakeups, wake_scheduler
from tests.helpers import auth
from tests.integration.test_scheduler_loop import add_node, job_row, submit
from worker.gan.distributed import find_free_port

# Far longer than any of these tests may take: whatever happens within it was not a poll.
LONG_POLL_S = 120.0
# Generous bounds for events that take milliseconds, on a loaded 2-core machine.
EVENT_TIMEOUT_S = 30.0


def wait_until(condition: object, timeout_s: float = EVENT_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("never happened")


def waiting_on_redis(redis_client: redis.Redis) -> bool:
    """True while some client (the scheduler, between passes) is blocked in BLPOP."""
    return any(client.get("cmd") == "blpop" for client in redis_client.client_list())


@pytest.fixture
def polling_slowly(settings: Settings) -> Settings:
    return settings.with_(scheduler_poll_s=LONG_POLL_S)


@pytest.fixture
def scheduler(polling_slowly: Settings) -> Iterator[threading.Thread]:
    stop = threading.Event()
    loop = threading.Thread(
        target=run_forever, args=(polling_slowly, make_celery(polling_slowly), stop)
    )
    loop.start()
    yield loop
    stop.set()
    wake_scheduler(polling_slowly, "test over")  # out of its two-minute wait
    loop.join(timeout=EVENT_TIMEOUT_S)
    assert not loop.is_alive()


def test_a_submission_is_placed_at_once_by_a_scheduler_that_would_poll_in_two_minutes(
    polling_slowly: Settings,
    scheduler: threading.Thread,
    redis_client: redis.Redis,
    alice: str,
) -> None:
    add_node(polling_slowly, "n1")
    wait_until(lambda: waiting_on_redis(redis_client))  # its first pass is over: it idles
    client = create_app(polling_slowly).test_client()
    job_id = submit(client, alice)
    wait_until(lambda: job_row(polling_slowly, job_id).state == "scheduled")


def test_without_a_wake_up_the_scheduler_waits_for_its_poll(
    polling_slowly: Settings, redis_client: redis.Redis
) -> None:
    """The control for the test above: the wait ends on a wake-up, not by itself."""
    wakeups = Wakeups(polling_slowly.with_(scheduler_poll_s=1.0))
    assert wakeups.wait() is False, "nothing woke it: the poll interval ran out"
    assert wake_scheduler(polling_slowly, "test")
    assert wakeups.wait() is True
    assert redis_client.llen(wakeups.key) == 0, "a wake-up is taken once"


def test_a_burst_of_wake_ups_costs_one_pass(polling_slowly: Settings) -> None:
    for _ in range(10):
        wake_scheduler(polling_slowly, "burst")
    wakeups = Wakeups(polling_slowly.with_(scheduler_poll_s=1.0))
    assert wakeups.wait() is True
    assert wakeups.wait() is False


def test_submission_goes_through_when_redis_is_down(settings: Settings, alice: str) -> None:
    nobody = settings.with_(broker_url=f"redis://127.0.0.1:{find_free_port()}/0")
    assert wake_scheduler(nobody, "test") is False
    client: FlaskClient = create_app(nobody).test_client()
    job_id = submit(client, alice)
    assert job_row(settings, job_id).state == "queued"
    cancelled = client.post(f"/api/v1/jobs/{job_id}/cancel", headers=auth(alice))
    assert cancelled.status_code == 202
    assert job_row(settings, job_id).state == "cancelled"
