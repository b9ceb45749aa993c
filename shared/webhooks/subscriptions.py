"""A user's webhooks: create (with its secret), list, delete, and the latest deliveries of one.

Each is its owner's alone: another user's webhook is not found, so ids reveal nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.models import User, Webhook, WebhookDelivery
from shared.webhooks.signing import new_secret

# What a webhook may subscribe to. `sweep.ended` is the end of a job of kind "sweep" (which
# then sends no `job.ended`), so it works as soon as that kind exists.
JOB_ENDED = "job.ended"
JOB_WARNING = "job.warning"
SWEEP_ENDED = "sweep.ended"
EVENTS = (JOB_ENDED, JOB_WARNING, SWEEP_ENDED)

# Enough for a few receivers per person plus some per-job ones; a script that creates one per
# job without deleting them is stopped before every job end writes hundreds of rows.
MAX_WEBHOOKS_PER_USER = 20
# What the owner sees of a webhook's history: the latest deliveries.
DELIVERIES_SHOWN = 50


class WebhookNotFoundError(LookupError):
    """No webhook with that id belongs to the caller."""

    def __init__(self, webhook_id: str):
        super().__init__(f"no webhook {webhook_id!r} among yours")
        self.webhook_id = webhook_id


def count_webhooks(session: Session, owner: User) -> int:
    return session.scalar(select(func.count()).where(Webhook.owner_id == owner.id)) or 0


def create_webhook(
    session: Session, owner: User, url: str, events: Sequence[str], job_id: str | None
) -> Webhook:
    """A new webhook of `owner` (already validated: URL, events, job ownership, count)."""
    webhook = Webhook(
        owner_id=owner.id, url=url, events=list(events), job_id=job_id, secret=new_secret()
    )
    session.add(webhook)
    session.flush()
    return webhook


def list_webhooks(session: Session, owner: User) -> list[Webhook]:
    query = select(Webhook).where(Webhook.owner_id == owner.id)
    return list(session.scalars(query.order_by(Webhook.created_at, Webhook.id)))


def get_webhook(session: Session, owner: User, webhook_id: str) -> Webhook:
    webhook = session.get(Webhook, webhook_id)
    if webhook is None or webhook.owner_id != owner.id:
        raise WebhookNotFoundError(webhook_id)
    return webhook


def delete_webhook(session: Session, owner: User, webhook_id: str) -> None:
    """Delete it and its deliveries (pending ones are not sent)."""
    session.delete(get_webhook(session, owner, webhook_id))
    session.flush()


def recent_deliveries(session: Session, webhook: Webhook) -> list[WebhookDelivery]:
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id)
    query = query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
    return list(session.scalars(query.limit(DELIVERIES_SHOWN)))
