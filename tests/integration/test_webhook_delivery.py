"""Webhooks on PostgreSQL: the delivery written in the transaction of the change, the retry
after the back-off, and two deliverers racing over the same rows, each delivery sent once (the
compare-and-set claim under real concurrency, which SQLite's one writer never tests)."""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest
from flask.testing import FlaskClient

import tests.unit.test_webhooks as on_sqlite
from shared.config import Settings
from shared.webhooks.delivery import deliver_due
from tests.unit.job_factories import running_job
from tests.unit.test_webhooks import LOOPBACK, Receiver, deliveries, finish, receiver, subscribe

__all__ = ["receiver"]  # the fixture, imported for these tests


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """PostgreSQL's settings, with the local receivers allowed."""
    return settings.with_(webhook_private_addresses=LOOPBACK)


def test_a_delivery_is_written_with_the_change_on_postgresql(
    client: FlaskClient, settings: Settings, alice: str
) -> None:
    on_sqlite.test_a_job_that_succeeds_writes_one_delivery_in_the_same_transaction(
        client, settings, alice
    )


def test_a_failed_post_is_retried_after_the_back_off_on_postgresql(
    client: FlaskClient, settings: Settings, alice: str, receiver: Receiver
) -> None:
    on_sqlite.test_a_receiver_that_fails_gets_the_same_body_again_after_the_back_off(
        client, settings, alice, receiver
    )


def test_two_deliverers_send_each_delivery_once(
    client: FlaskClient, settings: Settings, alice: str, receiver: Receiver
) -> None:
    subscribe(client, alice, receiver.url)
    jobs = [running_job(settings, "alice") for _ in range(12)]
    for job_id in jobs:
        finish(settings, job_id)
    start = threading.Barrier(2)

    def deliverer() -> None:
        start.wait()
        while deliver_due(settings, limit=3):
            pass

    threads = [threading.Thread(target=deliverer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    sent = Counter(json.loads(body)["delivery_id"] for _, body in receiver.received)
    assert len(sent) == len(jobs) and set(sent.values()) == {1}, sent
    assert {d.state for d in deliveries(settings)} == {"delivered"}
    assert {d.attempts for d in deliveries(settings)} == {1}
