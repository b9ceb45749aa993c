"""Webhooks on the real API (SQLite, local folder): subscriptions and their validation, the
delivery rows written with the change they report, and the deliverer POSTing to a real local
HTTP server, signed, retried with back-off on an injected clock, failed past the bound."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask.testing import FlaskClient
from jsonschema_rs import validator_for
from sqlalchemy import func, select

from api.openapi import document
from cli import main
from cli.group import ExitCode
from scheduler.process import run_forever
from shared.config import Settings
from shared.db import session_scope
from shared.jobs.reports import add_warning, end_warning
from shared.messaging import make_celery
from shared.models import Job, WebhookAttempt, WebhookDelivery, as_utc
from shared.states import JobState, transition
from shared.webhooks.delivery import Backoff, claim, deliver_due
from shared.webhooks.subscriptions import MAX_WEBHOOKS_PER_USER
from tests.helpers import auth, local_http_server
from tests.unit.job_factories import running_job

S = JobState
# The receivers these tests run listen on 127.0.0.1, which webhooks reach only when the
# operator allows it (GANFORGE_WEBHOOK_PRIVATE_ADDRESSES).
LOOPBACK = (ip_network("127.0.0.0/8"),)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings, with local receivers allowed."""
    return settings.with_(webhook_private_addresses=LOOPBACK)


@dataclass
class Receiver:
    """A real HTTP server on a free local port that answers POSTs with `statuses` in turn
    (the last one repeats) and keeps what it was sent."""

    statuses: list[int] = field(default_factory=lambda: [200])
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.received.append((dict(self.headers), body))
            status = got.statuses[min(len(got.received), len(got.statuses)) - 1]
            self.send_response(status)
            if 300 <= status < 400:  # a redirect elsewhere on this server, never to be followed
                self.send_header("Location", got.url + "/moved")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    with local_http_server(Handler) as port:
        got.url = f"http://127.0.0.1:{port}/hook"
        yield got


def subscribe(client: FlaskClient, token: str, url: str, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/webhooks", json={"url": url, **body}, headers=auth(token))
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def finish(settings: Settings, job_id: str, target: JobState = S.SUCCEEDED) -> None:
    with session_scope(settings.database_url) as session:
        assert transition(session, job_id, S.RUNNING, target, "done")


def deliveries(settings: Settings, job_id: str | None = None) -> list[WebhookDelivery]:
    with session_scope(settings.database_url) as session:
        query = select(WebhookDelivery).order_by(WebhookDelivery.created_at)
        if job_id is not None:
            query = query.where(WebhookDelivery.job_id == job_id)
        return list(session.scalars(query))


def documented(name: str) -> dict[str, Any]:
    """The OpenAPI document's schema of answer `name`, to validate a real answer against."""
    return {"$ref": f"#/components/schemas/{name}", "components": document()["components"]}


# --- subscriptions ----------------------------------------------------------------------------


def test_a_webhook_shows_its_secret_once_and_is_listed_without_it(
    client: FlaskClient, alice: str
) -> None:
    created = subscribe(client, alice, "https://hooks.example/ganforge", events=["job.ended"])
    assert len(created["secret"]) == 64 and int(created["secret"], 16) >= 0
    assert created["events"] == ["job.ended"] and created["job_id"] is None
    listed = client.get("/api/v1/webhooks", headers=auth(alice)).get_json()["webhooks"]
    assert [w["id"] for w in listed] == [created["id"]]
    assert "secret" not in listed[0]
    every = subscribe(client, alice, "http://hooks.example:8080/")
    assert every["events"] == ["job.ended", "job.warning", "sweep.ended"], "all when left out"


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"url": "ftp://hooks.example/x"}, "url"),
        ({"url": "https://"}, "url"),
        ({"url": "hooks.example/x"}, "url"),
        ({"url": "https://hooks.example/a b"}, "url"),
        ({"url": "https://hooks.example:port/"}, "url"),
        ({"url": "https://hooks.example/" + "x" * 2000}, "url"),
        ({}, "url"),
        ({"url": "https://hooks.example/", "events": ["job.done"]}, "events.0"),
        ({"url": "https://hooks.example/", "events": []}, "events"),
        ({"url": "https://hooks.example/", "events": "job.ended"}, "events"),
        ({"url": "https://hooks.example/", "job_id": "nope"}, "job_id"),
        ({"url": "https://hooks.example/", "job_id": "0" * 32}, "job_id"),
        ({"url": "https://hooks.example/", "secret": "mine"}, "secret"),
    ],
)
def test_a_bad_subscription_is_a_422_naming_the_field(
    client: FlaskClient, alice: str, body: dict[str, Any], path: str
) -> None:
    response = client.post("/api/v1/webhooks", json=body, headers=auth(alice))
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert [e["path"] for e in response.get_json()["errors"]] == [path]
    assert client.get("/api/v1/webhooks", headers=auth(alice)).get_json()["webhooks"] == []


def test_a_job_webhook_needs_a_job_of_your_own(
    client: FlaskClient, settings: Settings, alice: str, bob: str
) -> None:
    bobs_job = running_job(settings, "bob")
    refused = client.post(
        "/api/v1/webhooks",
        json={"url": "https://hooks.example/", "job_id": bobs_job},
        headers=auth(alice),
    )
    assert refused.status_code == 422
    assert refused.get_json()["errors"][0]["path"] == "job_id"
    assert subscribe(client, bob, "https://hooks.example/", job_id=bobs_job)["job_id"] == bobs_job


def test_a_user_has_at_most_the_limit_of_webhooks(client: FlaskClient, alice: str) -> None:
    for n in range(MAX_WEBHOOKS_PER_USER):
        subscribe(client, alice, f"https://hooks.example/{n}")
    over = client.post("/api/v1/webhooks", json={"url": "https://x.example/"}, headers=auth(alice))
    assert over.status_code == 409 and over.mimetype == "application/problem+json"


def test_another_user_can_neither_see_nor_delete_your_webhook(
    client: FlaskClient, alice: str, bob: str
) -> None:
    hook = subscribe(client, alice, "https://hooks.example/")
    assert client.get("/api/v1/webhooks", headers=auth(bob)).get_json()["webhooks"] == []
    url = f"/api/v1/webhooks/{hook['id']}"
    assert client.delete(url, headers=auth(bob)).status_code == 404
    assert client.get(url + "/deliveries", headers=auth(bob)).status_code == 404
    assert client.get(url + "/deliveries", headers=auth(alice)).status_code == 200
    assert client.delete(url, headers=auth(alice)).status_code == 204
    assert client.get("/api/v1/webhooks", headers=auth(alice)).get_json()["webhooks"] == []
    assert client.delete(url, headers=auth(alice)).status_code == 404


# --- events: written with the change ---------------------------------------------------------


def test_a_job_that_succeeds_writes_one_delivery_in_the_same_transaction(
    client: FlaskClient, settings: Settings, alice: str
) -> None:
    hook = subscribe(client, alice, "https://hooks.example/", events=["job.ended"])
    subscribe(client, alice, "https://warnings.example/", events=["job.warning"])
    job_id = running_job(settings, "alice")
    other = running_job(settings, "alice")
    subscribe(client, alice, "https://other.example/", job_id=other)

    class RolledBack(Exception):
        pass

    with pytest.raises(RolledBack), session_scope(settings.database_url) as session:
        assert transition(session, job_id, S.RUNNING, S.SUCCEEDED, "done")
        count = select(func.count()).select_from(WebhookDelivery)
        assert session.scalar(count) == 1, "written by the transition, before any commit"
        raise RolledBack
    assert deliveries(settings) == [], "a change that rolled back sends nothing"

    finish(settings, job_id)
    (delivery,) = deliveries(settings)
    assert (delivery.webhook_id, delivery.job_id, delivery.state) == (hook["id"], job_id, "pending")
    body = json.loads(delivery.body)
    assert body["event"] == "job.ended" and body["delivery_id"] == delivery.id
    assert body["job"]["id"] == job_id and body["job"]["state"] == "succeeded"
    assert set(body["job"]) == {"id", "name", "kind", "state", "error", "evaluation", "warnings"}
    assert datetime.fromisoformat(body["at"]).tzinfo is not None


def test_failures_and_cancels_end_a_job_too_and_a_sweep_ends_as_a_sweep(
    client: FlaskClient, settings: Settings, alice: str
) -> None:
    subscribe(client, alice, "https://jobs.example/", events=["job.ended"])
    sweeps = subscribe(client, alice, "https://sweeps.example/", events=["sweep.ended"])
    failed, sweep = running_job(settings, "alice"), running_job(settings, "alice")
    with session_scope(settings.database_url) as session:
        assert transition(session, failed, S.RUNNING, S.FAILED, "boom", error="CUDA out of memory")
        session.get(Job, sweep).kind = "sweep"  # the kind another branch adds
    finish(settings, sweep, S.SUCCEEDED)
    ((failed_delivery,), (sweep_delivery,)) = (
        deliveries(settings, failed),
        deliveries(settings, sweep),
    )
    assert json.loads(failed_delivery.body)["job"]["error"] == "CUDA out of memory"
    assert (sweep_delivery.event, sweep_delivery.webhook_id) == ("sweep.ended", sweeps["id"])


def test_a_warning_that_begins_or_ends_is_a_job_warning_event(
    client: FlaskClient, settings: Settings, alice: str
) -> None:
    subscribe(client, alice, "https://hooks.example/", events=["job.warning"])
    job_id = running_job(settings, "alice")
    with session_scope(settings.database_url) as session:
        attempt = session.get(Job, job_id).attempt
        add_warning(session, job_id, attempt, 200, "modes dropped to 3 of 8", "modes-drop")
    with session_scope(settings.database_url) as session:
        assert end_warning(session, job_id, attempt, 400, "modes-drop")
    began, ended = (json.loads(d.body) for d in deliveries(settings, job_id))
    assert began["event"] == ended["event"] == "job.warning"
    assert began["warning"]["message"] == "modes dropped to 3 of 8"
    assert began["warning"]["ended_step"] is None and ended["warning"]["ended_step"] == 400
    assert began["job"]["warnings"][0]["step"] == 200


# --- delivery ----------------------------------------------------------------------------------


def test_the_deliverer_posts_a_body_the_receiver_can_verify(
    client: FlaskClient, settings: Settings, alice: str, receiver: Receiver
) -> None:
    hook = subscribe(client, alice, receiver.url)
    job_id = running_job(settings, "alice")
    finish(settings, job_id)
    assert deliver_due(settings) == 1
    ((headers, body),) = receiver.received
    expected = hmac.new(hook["secret"].encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Ganforge-Signature"], f"sha256={expected}")
    (delivery,) = deliveries(settings)
    assert headers["X-Ganforge-Event"] == "job.ended"
    assert headers["X-Ganforge-Delivery"] == delivery.id == json.loads(body)["delivery_id"]
    assert headers["Content-Type"] == "application/json"
    shown = client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=auth(alice))
    validator_for(documented("DeliveryList")).validate(shown.get_json())
    validator_for(documented("CreatedWebhook")).validate(hook)
    listed = client.get("/api/v1/webhooks", headers=auth(alice)).get_json()
    validator_for(documented("WebhookList")).validate(listed)
    (row,) = shown.get_json()["deliveries"]
    assert (row["state"], row["attempts"], row["last_status"], row["job_id"]) == (
        "delivered", 1, 200, job_id,
    )  # fmt: skip
    assert row["next_try_at"] is None
    assert deliver_due(settings) == 0, "sent once"
    assert len(receiver.received) == 1


def test_a_receiver_that_fails_gets_the_same_body_again_after_the_back_off(
    client: FlaskClient, settings: Settings, alice: str, receiver: Receiver
) -> None:
    receiver.statuses = [500, 200]
    hook = subscribe(client, alice, receiver.url)
    finish(settings, running_job(settings, "alice"))
    start = as_utc(deliveries(settings)[0].created_at)
    backoff = Backoff(first_s=30, max_s=60)

    def at(seconds: float) -> int:
        return deliver_due(
            settings, clock=lambda: start + timedelta(seconds=seconds), backoff=backoff
        )

    assert at(0) == 1
    (pending,) = deliveries(settings)
    assert (pending.state, pending.attempts, pending.last_status) == ("pending", 1, 500)
    assert pending.last_error == "HTTP 500"
    assert as_utc(pending.next_try_at) == start + timedelta(seconds=30)
    assert at(29) == 0 and len(receiver.received) == 1, "not before the back-off"
    assert at(31) == 1
    (delivered,) = deliveries(settings)
    assert (delivered.state, delivered.attempts, delivered.last_status) == ("delivered", 2, 200)
    first, second = receiver.received
    assert (
        first[1] == second[1]
        and first[0]["X-Ganforge-Signature"] == second[0]["X-Ganforge-Signature"]
    )
    with session_scope(settings.database_url) as session:
        tries = session.scalars(select(WebhookAttempt).order_by(WebhookAttempt.id)).all()
        assert [(t.status, t.error) for t in tries] == [(500, "HTTP 500"), (200, None)]
        assert [as_utc(t.at) for t in tries] == [start, start + timedelta(seconds=31)]
    shown = client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=auth(alice))
    assert shown.get_json()["deliveries"][0]["attempts"] == 2


def test_back_off_doubles_up_to_its_cap() -> None:
    backoff = Backoff()
    assert [backoff.after(n).total_seconds() for n in (1, 2, 3, 7, 8, 50)] == [
        5, 10, 20, 300, 300, 300,
    ]  # fmt: skip


def test_past_the_bound_a_delivery_fails_with_its_last_error(
    client: FlaskClient, settings: Settings, alice: str, receiver: Receiver
) -> None:
    receiver.statuses = [503]
    hook = subscribe(client, alice, receiver.url)
    finish(settings, running_job(settings, "alice"))
    start = as_utc(deliveries(settings)[0].created_at)
    retry_s = 60.0

    def at(seconds: float) -> int:
        clock = lambda: start + timedelta(seconds=seconds)  # noqa: E731
        return deliver_due(settings.with_(webhook_retry_s=retry_s), clock=clock)

    assert at(0) == 1 and deliveries(settings)[0].state == "pending"
    assert at(58) == 1, "due again; its next try (5 s later) would pass the bound"
    (failed,) = deliveries(settings)
    assert (failed.state, failed.attempts, failed.last_error) == ("failed", 2, "HTTP 503")
    assert at(3600) == 0 and len(receiver.received) == 2, "a failed delivery is not retried"
    (row,) = client.get(
        f"/api/v1/webhooks/{hook['id']}/deliveries", headers=auth(alice)
    ).get_json()["deliveries"]
    assert (row["state"], row["last_status"], row["next_try_at"]) == ("failed", 503, None)


def test_a_receiver_that_is_not_there_is_an_error_not_a_status(
    client: FlaskClient, settings: Settings, alice: str, receiver: Receiver
) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subscribe(client, alice, f"http://127.0.0.1:{port}/gone")
    finish(settings, running_job(settings, "alice"))
    assert deliver_due(settings) == 1
    (pending,) = deliveries(settings)
    assert pending.state == "pending" and pending.last_status is None
    assert pending.last_error and "refused" in pending.last_error.lower()


def test_only_one_sender_claims_a_delivery(
    client: FlaskClient, settings: Settings, alice: str
) -> None:
    subscribe(client, alice, "https://hooks.example/")
    finish(settings, running_job(settings, "alice"))
    (delivery,) = deliveries(settings)
    now = as_utc(delivery.created_at) + timedelta(seconds=1)
    first = claim(settings.database_url, delivery.id, 0, now)
    second = claim(settings.database_url, delivery.id, 0, now)  # another scheduler, same read
    assert first is not None and first.attempts == 1 and second is None
    # A claim whose sender died is taken again once it runs out, as the next attempt.
    assert claim(settings.database_url, delivery.id, 1, now + timedelta(seconds=5)) is None
    later = claim(settings.database_url, delivery.id, 1, now + timedelta(minutes=2))
    assert later is not None and later.attempts == 2


def test_a_deleted_webhook_takes_its_deliveries_with_it(
    client: FlaskClient, settings: Settings, alice: str, receiver: Receiver
) -> None:
    hook = subscribe(client, alice, receiver.url)
    finish(settings, running_job(settings, "alice"))
    assert len(deliveries(settings)) == 1
    assert client.delete(f"/api/v1/webhooks/{hook['id']}", headers=auth(alice)).status_code == 204
    assert deliveries(settings) == []
    assert deliver_due(settings) == 0
    assert receiver.received == []


def test_the_scheduler_process_delivers_beside_its_loop_and_stops_with_it(
    client: FlaskClient, settings: Settings, alice: str, receiver: Receiver
) -> None:
    subscribe(client, alice, receiver.url)
    stop = threading.Event()
    loop = threading.Thread(target=run_forever, args=(settings, make_celery(settings), stop))
    loop.start()
    try:
        finish(settings, running_job(settings, "alice"))
        deadline = time.monotonic() + 20
        while deliveries(settings)[0].state != "delivered" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert deliveries(settings)[0].state == "delivered"
    finally:
        stop.set()
        loop.join(timeout=20)
    assert not loop.is_alive() and len(receiver.received) == 1
    deliverer = [t for t in threading.enumerate() if t.name == "webhook-deliverer"]
    for thread in deliverer:
        thread.join(timeout=5)
    assert not any(t.is_alive() for t in deliverer), "the deliverer stops with the loop"


# --- the CLI -----------------------------------------------------------------------------------


def test_the_cli_adds_lists_shows_deliveries_and_removes(
    api_url: str, settings: Settings, alice: str, receiver: Receiver, tmp_path: Path
) -> None:
    def ganforge(*args: str) -> Result:
        env = {"GANFORGE_HOME": str(tmp_path / "cli"), "GANFORGE_API_URL": None, "COLUMNS": "200"}
        return CliRunner().invoke(main, ["--url", api_url, "--token", alice, *args], env=env)

    job_id = running_job(settings, "alice")
    added = ganforge("webhook", "add", receiver.url, "--event", "job.ended", "--job", job_id[:8])
    assert added.exit_code == 0, added.output
    *said, secret = added.stdout.strip().splitlines()
    assert re.fullmatch(r"[0-9a-f]{64}", secret) and f"job {job_id}" in said[0]
    webhook_id = re.search(r"webhook ([0-9a-f]{32})", said[0]).group(1)  # type: ignore[union-attr]
    listed = ganforge("webhook", "list")
    assert webhook_id in listed.stdout and receiver.url in listed.stdout
    assert secret not in listed.stdout

    finish(settings, job_id)
    deliver_due(settings)
    shown = ganforge("webhook", "deliveries", webhook_id, "--json")
    (row,) = json.loads(shown.stdout)["deliveries"]
    assert (row["state"], row["job_id"], row["last_status"]) == ("delivered", job_id, 200)
    assert "delivered" in ganforge("webhook", "deliveries", webhook_id).stdout

    bad = ganforge("webhook", "add", "ftp://hooks.example/")
    assert bad.exit_code == ExitCode.ERROR and "url:" in bad.stderr
    assert ganforge("webhook", "remove", webhook_id).exit_code == 0
    assert ganforge("webhook", "list", "-q").stdout == ""
    assert ganforge("webhook", "remove", webhook_id).exit_code == ExitCode.NOT_FOUND
