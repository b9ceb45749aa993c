"""The events webhooks report, written as delivery rows in the caller's transaction.

`shared.states.transition` calls `job_ended` when a job reaches a final state, and
`shared.jobs.reports` calls `job_warning` when a warning begins or ends: the rows commit or
roll back with the change itself, so an event is never lost and never sent for a change that
did not happen. The body is fixed here, once, so every retry sends (and signs) the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from shared.models import Job, Webhook, WebhookDelivery, new_id, utcnow
from shared.webhooks.subscriptions import JOB_ENDED, JOB_WARNING, SWEEP_ENDED

# The job's fields a body carries: what a receiver needs to act on the news without a call back.
_JOB_FIELDS = (Job.id, Job.name, Job.kind, Job.state, Job.error, Job.evaluation, Job.warnings)


def job_ended(session: Session, job_id: str) -> int:
    """Write the deliveries of a job's end (`sweep.ended` for a sweep); how many."""
    return _record(session, job_id, None)


def job_warning(session: Session, job_id: str, warning: dict[str, Any]) -> int:
    """Write the deliveries of a warning that began or ended (`warning` is its entry)."""
    return _record(session, job_id, warning)


def _record(session: Session, job_id: str, warning: dict[str, Any] | None) -> int:
    # One query, by the job's owner, for the common case of a user with no webhooks.
    subscribed = list(
        session.scalars(
            select(Webhook)
            .join(Job, Job.owner_id == Webhook.owner_id)
            .where(
                Job.id == job_id,
                or_(Webhook.job_id.is_(None), Webhook.job_id == job_id),
            )
        )
    )
    if not subscribed:
        return 0
    # Columns, not the ORM object: the state UPDATE bypassed the session's copy of the row.
    job = session.execute(select(*_JOB_FIELDS).where(Job.id == job_id)).one()
    if warning is not None:
        event = JOB_WARNING
    else:
        event = SWEEP_ENDED if job.kind == "sweep" else JOB_ENDED
    now = utcnow()
    written = 0
    for webhook in subscribed:
        if event not in webhook.events:
            continue
        delivery_id = new_id()
        body: dict[str, Any] = {
            "event": event,
            "delivery_id": delivery_id,
            "at": now.isoformat(),
            "job": {
                "id": job.id,
                "name": job.name,
                "kind": job.kind,
                "state": job.state,
                "error": job.error,
                "evaluation": job.evaluation,
                "warnings": job.warnings or [],
            },
        }
        if warning is not None:
            body["warning"] = warning
        session.add(
            WebhookDelivery(
                id=delivery_id,
                webhook_id=webhook.id,
                job_id=job_id,
                event=event,
                body=json.dumps(body, separators=(",", ":")),
                state="pending",
                attempts=0,
                next_try_at=now,
                created_at=now,
            )
        )
        written += 1
    return written
