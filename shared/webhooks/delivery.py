"""The deliverer: POST due deliveries to their webhooks, signed, retrying with back-off.

Each delivery is claimed before it is sent by a compare-and-set UPDATE (its `attempts` as read,
raised by one, and its next try pushed past the claim) so that two schedulers never send it at
once; a sender that dies after its claim leaves the row due again once CLAIM_S has passed. The
POST runs outside any transaction. A 2xx delivers it; anything else (another status, no
answer within the timeout, a refused connection) is stored as the attempt's outcome and tried
again after `Backoff`, until `retry_s` after the event, when it is marked failed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from sqlalchemy import select, update

from shared.db import session_scope
from shared.models import Webhook, WebhookAttempt, WebhookDelivery, as_utc, utcnow
from shared.webhooks.signing import signature

log = logging.getLogger(__name__)

# A receiver has this long to answer: enough for a chat service's webhook, short enough that
# one dead receiver does not hold up everyone else's deliveries for long.
TIMEOUT_S = 5.0
# A claimed delivery is due again after this long if its sender never records an outcome
# (it died): well past the timeout, so a live sender always records first.
CLAIM_S = 60.0
# Deliveries one call sends at most, so that the loop that calls it comes back regularly.
BATCH = 20
USER_AGENT = "ganforge-webhooks/1"

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Backoff:
    """Seconds before the next try after `attempts` failed ones: first_s, doubling, capped."""

    first_s: float = 5.0
    max_s: float = 300.0

    def after(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.first_s * 2 ** max(attempts - 1, 0), self.max_s))


@dataclass(frozen=True)
class Claimed:
    """A delivery this sender holds: what to send, where, and the attempt it is."""

    id: str
    event: str
    body: str
    url: str
    secret: str
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class Outcome:
    status: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def deliver_due(
    database_url: str,
    retry_s: float,
    *,
    clock: Clock = utcnow,
    backoff: Backoff = Backoff(),  # frozen: one shared default is safe
    limit: int = BATCH,
    timeout_s: float = TIMEOUT_S,
) -> int:
    """Send up to `limit` deliveries that are due now; returns how many were attempted."""
    sent = 0
    for delivery_id, attempts in _due(database_url, clock(), limit):
        claimed = claim(database_url, delivery_id, attempts, clock())
        if claimed is None:
            continue  # another sender took it, or its webhook was deleted
        outcome = post(claimed, timeout_s)
        _record(database_url, claimed, outcome, clock(), retry_s, backoff)
        sent += 1
    return sent


def _due(database_url: str, now: datetime, limit: int) -> list[tuple[str, int]]:
    with session_scope(database_url) as session:
        rows = session.execute(
            select(WebhookDelivery.id, WebhookDelivery.attempts)
            .where(WebhookDelivery.state == "pending", WebhookDelivery.next_try_at <= now)
            .order_by(WebhookDelivery.next_try_at)
            .limit(limit)
        )
        return [(row.id, row.attempts) for row in rows]


def claim(database_url: str, delivery_id: str, attempts: int, now: datetime) -> Claimed | None:
    """Take the delivery for one attempt, if it is still pending, due and as we read it."""
    with session_scope(database_url) as session:
        taken = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.state == "pending",
                WebhookDelivery.attempts == attempts,
                WebhookDelivery.next_try_at <= now,
            )
            .values(attempts=attempts + 1, next_try_at=now + timedelta(seconds=CLAIM_S))
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            return None
        row = session.execute(
            select(
                WebhookDelivery.event,
                WebhookDelivery.body,
                WebhookDelivery.created_at,
                Webhook.url,
                Webhook.secret,
            )
            .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
            .where(WebhookDelivery.id == delivery_id)
        ).one_or_none()
    if row is None:
        return None
    return Claimed(
        delivery_id, row.event, row.body, row.url, row.secret, attempts + 1, as_utc(row.created_at)
    )


def post(claimed: Claimed, timeout_s: float = TIMEOUT_S) -> Outcome:
    """One POST of the delivery. Redirects are not followed (a 3xx is not delivered): the
    receiver registered is the one that gets the body."""
    body = claimed.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Ganforge-Event": claimed.event,
        "X-Ganforge-Delivery": claimed.id,
        "X-Ganforge-Signature": signature(claimed.secret, body),
    }
    try:
        # stream=True, then closed unread: a receiver's answer body is not ours to buffer.
        with requests.post(
            claimed.url,
            data=body,
            headers=headers,
            timeout=timeout_s,
            allow_redirects=False,
            stream=True,
        ) as response:
            status = response.status_code
    except requests.Timeout:
        return Outcome(None, f"no answer within {timeout_s:g} s")
    except requests.RequestException as error:
        return Outcome(None, _reason(error))
    return Outcome(status, None if 200 <= status < 300 else f"HTTP {status}")


def _record(
    database_url: str,
    claimed: Claimed,
    outcome: Outcome,
    now: datetime,
    retry_s: float,
    backoff: Backoff,
) -> None:
    """Store the attempt and what follows: delivered, another try later, or failed for good."""
    values: dict[str, object] = {
        "last_status": outcome.status,
        "last_error": outcome.error,
        "last_attempt_at": now,
    }
    if outcome.delivered:
        values.update(state="delivered", delivered_at=now)
    else:
        next_try = now + backoff.after(claimed.attempts)
        if next_try > claimed.created_at + timedelta(seconds=retry_s):
            values.update(state="failed")
            log.warning(
                "webhook delivery %s failed for good after %d attempts: %s",
                claimed.id,
                claimed.attempts,
                outcome.error,
            )
        else:
            values.update(next_try_at=next_try)
    with session_scope(database_url) as session:
        # Only while the claim is still ours (and the webhook not deleted): a sender whose
        # claim ran out records nothing over the attempt that followed it.
        kept = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == claimed.id,
                WebhookDelivery.attempts == claimed.attempts,
                WebhookDelivery.state == "pending",
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if kept.rowcount == 1:  # type: ignore[attr-defined]
            session.add(
                WebhookAttempt(
                    delivery_id=claimed.id, at=now, status=outcome.status, error=outcome.error
                )
            )


def _reason(error: requests.RequestException) -> str:
    """The cause in a few words ("[Errno 111] Connection refused"), not urllib3's whole chain."""
    cause = error.args[0] if error.args else error
    cause = getattr(cause, "reason", None) or cause
    return re.sub(r"^(?:<[^>]*>|\w+\([^)]*\)): ", "", str(cause))[:500]
