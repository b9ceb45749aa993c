"""Deliveries go out side by side: a receiver that holds its answer delays only its own
delivery, both in one `deliver_due` call and in the scheduler's long-running deliverer, which
never has the same delivery in flight twice."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from sqlalchemy import select

from scheduler.deliveries import Deliverer
from shared.config import Settings
from shared.db import session_scope
from shared.models import User, WebhookDelivery
from shared.webhooks.delivery import Sender, deliver_due
from shared.webhooks.subscriptions import create_webhook
from tests.helpers import local_http_server, user_token
from tests.unit.job_factories import running_job
from tests.unit.test_webhooks import LOOPBACK, finish

# Far past any wait below: a receiver never holds a test forever if its release is missed.
HOLD_LIMIT_S = 4.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_(webhook_private_addresses=LOOPBACK)


class Held:
    """A local receiver that answers 200, each POST only once `release` is set (unless
    `hold` is False); `arrived` is set at each POST."""

    def __init__(self, hold: bool) -> None:
        self.hold = hold
        self.release = threading.Event()
        self.arrived = threading.Event()
        self.posts = 0
        self.url = ""


@contextmanager
def serving(receiver: Held) -> Iterator[Held]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            receiver.posts += 1
            receiver.arrived.set()
            if receiver.hold:
                receiver.release.wait(HOLD_LIMIT_S)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    with local_http_server(Handler) as port:
        receiver.url = f"http://127.0.0.1:{port}/hook"
        try:
            yield receiver
        finally:
            receiver.release.set()


@pytest.fixture
def slow() -> Iterator[Held]:
    with serving(Held(hold=True)) as receiver:
        yield receiver


@pytest.fixture
def fast() -> Iterator[Held]:
    with serving(Held(hold=False)) as receiver:
        yield receiver


def job_ending_to(settings: Settings, receiver: Held) -> str:
    """A job of alice's with a webhook of its own to `receiver`, ended: its delivery's id."""
    job_id = running_job(settings, "alice")
    with session_scope(settings.database_url) as session:
        owner = session.scalars(select(User).where(User.name == "alice")).one()
        create_webhook(session, owner, receiver.url, ["job.ended"], job_id)
    finish(settings, job_id)
    with session_scope(settings.database_url) as session:
        return session.scalars(
            select(WebhookDelivery.id).where(WebhookDelivery.job_id == job_id)
        ).one()


def state(settings: Settings, delivery_id: str) -> str:
    with session_scope(settings.database_url) as session:
        return session.get(WebhookDelivery, delivery_id).state


def wait_delivered(settings: Settings, delivery_id: str, receiver: Held) -> None:
    assert receiver.arrived.wait(HOLD_LIMIT_S / 2), "the POST never came"
    deadline = threading.Event()
    for _ in range(200):  # the answer is recorded just after the POST returns
        if state(settings, delivery_id) == "delivered":
            return
        deadline.wait(0.01)
    raise AssertionError(f"{delivery_id} not recorded as delivered")


def test_a_slow_receiver_does_not_hold_up_the_next_delivery(
    settings: Settings, slow: Held, fast: Held
) -> None:
    user_token(settings, "alice")
    held = job_ending_to(settings, slow)  # due first: one at a time, it would go first
    quick = job_ending_to(settings, fast)
    sent: list[int] = []
    call = threading.Thread(target=lambda: sent.append(deliver_due(settings)))
    call.start()
    try:
        assert slow.arrived.wait(HOLD_LIMIT_S / 2)
        wait_delivered(settings, quick, fast)
        assert state(settings, held) == "pending", "the slow one is still in flight"
    finally:
        slow.release.set()
        call.join(timeout=10)
    assert sent == [2] and state(settings, held) == "delivered"
    assert (slow.posts, fast.posts) == (1, 1)


def test_the_deliverer_fills_a_free_thread_while_one_is_held_and_never_sends_twice(
    settings: Settings, slow: Held, fast: Held
) -> None:
    user_token(settings, "alice")
    held = job_ending_to(settings, slow)
    deliverer = Deliverer(Sender.from_settings(settings), workers=2)
    try:
        assert deliverer.poll() == 1
        assert slow.arrived.wait(HOLD_LIMIT_S / 2)
        assert deliverer.poll() == 0, "in flight here: not started again"
        # An event after the slow send began goes out on the other thread meanwhile.
        later = job_ending_to(settings, fast)
        assert deliverer.poll() == 1
        wait_delivered(settings, later, fast)
        assert deliverer.in_flight() == 1 and state(settings, held) == "pending"
    finally:
        slow.release.set()
        deliverer.close()  # waits for the send in flight
    assert state(settings, held) == "delivered" and deliverer.in_flight() == 0
    assert (slow.posts, fast.posts) == (1, 1)
