"""The deliverer: POST due deliveries to their webhooks, signed, retrying with back-off.

Each delivery is claimed before it is sent by a compare-and-set UPDATE (its `attempts` as read,
raised by one, and its next try pushed past the claim) so that two schedulers never send it at
once; a sender that dies after its claim leaves the row due again once CLAIM_S has passed. The
POST runs outside any transaction. A 2xx delivers it; anything else (another status, no
answer within the timeout, a refused connection) is stored as the attempt's outcome and tried
again after `Backoff`, until `retry_s` after the event, when it is marked failed. A URL whose
address the policy refuses (shared/webhooks/addresses.py) fails at once: no retry makes a
loopback address public. `deliver_due` sends a batch PARALLEL at a time; the scheduler's
long-running deliverer (scheduler/deliveries.py) keeps its pool full instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from shared.config import Settings
from shared.db import session_scope
from shared.models import Webhook, WebhookAttempt, WebhookDelivery, as_utc, utcnow
from shared.webhooks import transport
from shared.webhooks.addresses import AddressPolicy
from shared.webhooks.signing import signature
from shared.webhooks.transport import Outcome

log = logging.getLogger(__name__)

# A receiver has this long to answer: enough for a chat service's webhook, short enough that
# one dead receiver does not hold up everyone else's deliveries for long.
TIMEOUT_S = 5.0
# A claimed delivery is due again after this long if its sender never records an outcome
# (it died): well past the timeout, so a live sender always records first.
CLAIM_S = 60.0
# Deliveries one call sends at most, so that the loop that calls it comes back regularly.
BATCH = 20
# Deliveries sent at once: a few slow or dead receivers (each holding a thread for up to
# TIMEOUT_S) leave the others flowing, while a burst of events stays gentle on the database.
PARALLEL = 8
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
class Sender:
    """How deliveries are sent: the settings' database, retry bound and address policy, and
    what a test may replace (the clock, the back-off, the timeout)."""

    database_url: str
    retry_s: float
    policy: AddressPolicy
    clock: Clock = utcnow
    backoff: Backoff = Backoff()  # frozen: one shared default is safe
    timeout_s: float = TIMEOUT_S

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> Sender:
        policy = AddressPolicy(settings.webhook_private_addresses)
        return cls(settings.database_url, settings.webhook_retry_s, policy, **options)

    def due(self, limit: int, excluding: Collection[str] = ()) -> list[tuple[str, int]]:
        """Up to `limit` (id, attempts) of deliveries due now, oldest due first, leaving out
        `excluding` (those this process has in flight)."""
        query = select(WebhookDelivery.id, WebhookDelivery.attempts).where(
            WebhookDelivery.state == "pending", WebhookDelivery.next_try_at <= self.clock()
        )
        if excluding:
            query = query.where(WebhookDelivery.id.notin_(list(excluding)))
        with session_scope(self.database_url) as session:
            rows = session.execute(query.order_by(WebhookDelivery.next_try_at).limit(limit))
            return [(row.id, row.attempts) for row in rows]

    def attempt(self, delivery_id: str, attempts: int) -> bool:
        """Claim, POST and record one delivery; False when another sender had it first."""
        claimed = claim(self.database_url, delivery_id, attempts, self.clock())
        if claimed is None:
            return False  # another sender took it, or its webhook was deleted
        outcome = post(claimed, self.policy, self.timeout_s)
        _record(self.database_url, claimed, outcome, self.clock(), self.retry_s, self.backoff)
        return True


def deliver_due(
    settings: Settings, *, limit: int = BATCH, workers: int = PARALLEL, **options: Any
) -> int:
    """Send up to `limit` deliveries that are due now, `workers` at a time, and wait for them;
    returns how many were attempted. `options` are Sender's (clock, backoff, timeout_s)."""
    sender = Sender.from_settings(settings, **options)
    with ThreadPoolExecutor(workers, thread_name_prefix="webhook-post") as pool:
        sent = list(pool.map(lambda due: sender.attempt(*due), sender.due(limit)))
    return sum(sent)


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


def post(claimed: Claimed, policy: AddressPolicy, timeout_s: float = TIMEOUT_S) -> Outcome:
    """One POST of the delivery, signed, to an address `policy` allows (shared/webhooks/
    transport.py). Redirects are not followed (a 3xx is not delivered): the receiver
    registered is the one that gets the body."""
    body = claimed.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Ganforge-Event": claimed.event,
        "X-Ganforge-Delivery": claimed.id,
        "X-Ganforge-Signature": signature(claimed.secret, body),
    }
    return transport.post(claimed.url, body, headers, timeout_s, policy)


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
        if outcome.final or next_try > claimed.created_at + timedelta(seconds=retry_s):
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
