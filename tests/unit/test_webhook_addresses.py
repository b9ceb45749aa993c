"""Webhooks reach public addresses only (unless the operator allows a private network): the
address classes, names that resolve inside, IPv6 forms of IPv4 addresses, the API's refusal
at creation, and the deliverer's refusal at delivery time, recorded and not retried."""

from __future__ import annotations

import socket
from ipaddress import ip_address, ip_network
from typing import Any

import pytest
from flask.testing import FlaskClient

from shared.config import Settings
from shared.db import session_scope
from shared.models import User, WebhookAttempt
from shared.webhooks.addresses import (
    AddressPolicy,
    AddressRefusedError,
    UnresolvableHostError,
    check_url,
    resolve,
)
from shared.webhooks.delivery import deliver_due
from shared.webhooks.subscriptions import create_webhook
from tests.helpers import auth
from tests.unit.job_factories import running_job
from tests.unit.test_webhooks import Receiver, deliveries, finish, receiver

__all__ = ["receiver"]  # the fixture, imported for these tests

REFUSE_ALL = AddressPolicy()


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
        ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"), ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
        ("100.64.0.1", "non-routable"), ("fec0::1", "site-local"),
        # IPv4 addresses written as IPv6: mapped, 6to4 and NAT64 carry the one that decides.
        ("::ffff:127.0.0.1", "loopback"), ("::ffff:169.254.169.254", "link-local"),
        ("2002:a00:1::", "private"), ("64:ff9b::7f00:1", "loopback"),
    ],
)  # fmt: skip
def test_each_class_of_non_public_address_is_refused_by_name(address: str, kind: str) -> None:
    reason = REFUSE_ALL.refusal(ip_address(address))
    assert reason is not None and f"is {kind}, not a public address" in reason
    assert reason.startswith(address) or reason.startswith(str(ip_address(address)))


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert REFUSE_ALL.refusal(ip_address(address)) is None


def test_an_allowed_network_opens_only_itself_and_its_ipv6_mapped_forms() -> None:
    policy = AddressPolicy((ip_network("127.0.0.0/8"), ip_network("10.2.0.0/16")))
    assert policy.refusal(ip_address("127.0.0.1")) is None
    assert policy.refusal(ip_address("::ffff:127.0.0.1")) is None
    assert policy.refusal(ip_address("10.2.3.4")) is None
    assert policy.refusal(ip_address("10.3.0.1")) is not None
    assert policy.refusal(ip_address("169.254.169.254")) is not None
    assert policy.refusal(ip_address("::1")) is not None, "IPv6 loopback is not in 127/8"


def fake_dns(answers: dict[str, list[str]]) -> Any:
    """A getaddrinfo that answers `answers[host]` and knows no other name."""

    def getaddrinfo(host: str, port: int, *_: Any) -> list[tuple[Any, ...]]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers[host]
        ]

    return getaddrinfo


def test_a_name_is_refused_when_any_of_its_addresses_is_private() -> None:
    dns = fake_dns({"intranet.example": ["10.0.0.5"], "mixed.example": ["93.184.215.14", "::1"]})
    with pytest.raises(AddressRefusedError, match=r"10\.0\.0\.5 is private"):
        REFUSE_ALL.check(resolve("intranet.example", 443, dns))
    with pytest.raises(AddressRefusedError, match=r"::1 is loopback"):
        REFUSE_ALL.check(resolve("mixed.example", 443, dns))
    with pytest.raises(UnresolvableHostError, match=r"nowhere\.example does not resolve"):
        resolve("nowhere.example", 443, dns)


def test_literal_and_odd_forms_of_loopback_are_seen_through() -> None:
    for url in ("http://127.0.0.1:9/x", "http://[::1]/x", "http://[::ffff:127.0.0.1]/x",
                "http://2130706433/x", "http://0x7f.1/x", "http://localhost/x"):  # fmt: skip
        with pytest.raises(AddressRefusedError, match="loopback"):
            check_url(url, REFUSE_ALL)
    check_url("https://no-such-host.invalid/x", REFUSE_ALL)  # checked again at delivery


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "http://10.0.0.7/hook",
        "http://localhost:8765/api/v1/jobs",
    ],
)
def test_the_api_refuses_a_webhook_to_an_inside_address(
    client: FlaskClient, alice: str, url: str
) -> None:
    response = client.post("/api/v1/webhooks", json={"url": url}, headers=auth(alice))
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    (error,) = response.get_json()["errors"]
    assert error["path"] == "url" and "not a public address" in error["message"]
    assert "url: " in response.get_json()["detail"]
    assert client.get("/api/v1/webhooks", headers=auth(alice)).get_json()["webhooks"] == []


def test_a_name_that_resolves_inside_at_delivery_is_refused_and_not_retried(
    client: FlaskClient, settings: Settings, alice: str, receiver: Receiver
) -> None:
    # Created past the API's check (as a name that resolved elsewhere then would be), the URL
    # now resolves to the receiver on loopback, which this service does not allow.
    url = receiver.url.replace("127.0.0.1", "localhost")
    with session_scope(settings.database_url) as session:
        owner = session.query(User).filter_by(name="alice").one()
        hook = create_webhook(session, owner, url, ["job.ended"], None)
        hook_id = hook.id
    finish(settings, running_job(settings, "alice"))
    assert deliver_due(settings) == 1
    assert receiver.received == [], "nothing reached the inside address"
    (delivery,) = deliveries(settings)
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("failed", 1, None)
    assert delivery.last_error == "refused: 127.0.0.1 is loopback, not a public address"
    with session_scope(settings.database_url) as session:
        (attempt,) = session.query(WebhookAttempt).all()
        assert attempt.error == delivery.last_error
    shown = client.get(f"/api/v1/webhooks/{hook_id}/deliveries", headers=auth(alice))
    (row,) = shown.get_json()["deliveries"]
    assert (row["state"], row["last_error"]) == ("failed", delivery.last_error)
    assert deliver_due(settings) == 0, "a refused delivery is not tried again"
    # The operator allows loopback: a new event reaches the same receiver by the same name.
    allowed = settings.with_(webhook_private_addresses=(ip_network("127.0.0.0/8"),))
    finish(allowed, running_job(allowed, "alice"))
    assert deliver_due(allowed) == 1 and len(receiver.received) == 1
    headers, _ = receiver.received[0]
    assert headers["Host"] == url.split("/")[2], "the URL's host, not the pinned address"


def test_a_redirect_is_not_followed(
    client: FlaskClient, settings: Settings, alice: str, receiver: Receiver
) -> None:
    allowed = settings.with_(webhook_private_addresses=(ip_network("127.0.0.0/8"),))
    receiver.statuses = [307]
    with session_scope(settings.database_url) as session:
        owner = session.query(User).filter_by(name="alice").one()
        create_webhook(session, owner, receiver.url, ["job.ended"], None)
    finish(allowed, running_job(allowed, "alice"))
    assert deliver_due(allowed) == 1
    assert len(receiver.received) == 1, "one POST, no second request to the Location"
    (delivery,) = deliveries(allowed)
    assert (delivery.state, delivery.last_error) == ("pending", "HTTP 307")
