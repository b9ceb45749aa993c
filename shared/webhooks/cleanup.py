"""Removing finished deliveries once they are old: delivered and failed ones (with their
attempts) whose event is older than GANFORGE_WEBHOOK_HISTORY_S, so the tables hold a bounded
history instead of every event ever sent. Pending deliveries are never touched, whatever
their age. The scheduler's housekeeping runs it (scheduler/housekeeping.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select

from shared.db import session_scope
from shared.models import WebhookAttempt, WebhookDelivery, utcnow

FINISHED = ("delivered", "failed")
# Deliveries one transaction removes: short enough that PostgreSQL's locks and SQLite's one
# writer are held for milliseconds, so the API and workers writing beside it never wait long.
BATCH = 500
# Batches one run removes at most: a backlog (the first run after an upgrade) is worked off
# over several housekeeping turns instead of holding up one scheduler pass.
MAX_BATCHES = 20


def remove_old_deliveries(
    database_url: str,
    keep_s: float,
    now: datetime | None = None,
    *,
    batch: int = BATCH,
    max_batches: int = MAX_BATCHES,
) -> int:
    """Delete finished deliveries whose event is older than `keep_s`, and their attempts, in
    batches of `batch`, at most `max_batches` of them; returns the deliveries removed."""
    cutoff = (now or utcnow()) - timedelta(seconds=keep_s)
    old = select(WebhookDelivery.id).where(
        WebhookDelivery.state.in_(FINISHED), WebhookDelivery.created_at < cutoff
    )
    removed = 0
    for _ in range(max_batches):
        with session_scope(database_url) as session:
            ids = list(session.scalars(old.limit(batch)))
            if ids:
                # Attempts first and by name: no reliance on the database cascading them.
                session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)))
                session.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(ids)))
        removed += len(ids)
        if len(ids) < batch:
            break
    return removed
