"""Old finished webhook deliveries go, with their attempts, in bounded batches; pending ones and
recent ones stay; the scheduler's housekeeping runs it hourly."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from scheduler.housekeeping import DELIVERY_CLEANUP_INTERVAL_S, Housekeeping
from shared.config import Settings
from shared.db import session_scope
from shared.models import User, WebhookAttempt, WebhookDelivery, new_id, utcnow
from shared.webhooks.cleanup import remove_old_deliveries
from shared.webhooks.subscriptions import create_webhook
from tests.helpers import user_token
from tests.unit.job_factories import running_job

DAY = timedelta(days=1)


def add_deliveries(settings: Settings, *rows: tuple[str, timedelta]) -> list[str]:
    """A delivery per (state, age), each with two attempts; their ids in order."""
    user_token(settings, "alice")
    job_id = running_job(settings, "alice")
    now, ids = utcnow(), []
    with session_scope(settings.database_url) as session:
        owner = session.scalars(select(User).where(User.name == "alice")).one()
        hook = create_webhook(session, owner, "https://hooks.example/", ["job.ended"], None)
        for state, age in rows:
            at = now - age
            delivery = WebhookDelivery(
                id=new_id(), webhook_id=hook.id, job_id=job_id, event="job.ended", body="{}",
                state=state, attempts=2, next_try_at=at, created_at=at,
            )  # fmt: skip
            session.add(delivery)
            session.flush()
            session.add_all(WebhookAttempt(delivery_id=delivery.id, at=at) for _ in range(2))
            ids.append(delivery.id)
    return ids


def remaining(settings: Settings) -> tuple[set[str], int]:
    """The deliveries left, and how many attempts."""
    with session_scope(settings.database_url) as session:
        ids = set(session.scalars(select(WebhookDelivery.id)))
        return ids, session.scalar(select(func.count()).select_from(WebhookAttempt)) or 0


def test_old_finished_deliveries_go_with_their_attempts_and_pending_ones_stay(
    settings: Settings,
) -> None:
    old = [("delivered", 40 * DAY)] * 5 + [("failed", 31 * DAY)] * 2
    kept = [("pending", 40 * DAY), ("delivered", 29 * DAY), ("failed", 1 * DAY)]
    ids = add_deliveries(settings, *old, *kept)
    removed = remove_old_deliveries(settings.database_url, (30 * DAY).total_seconds(), batch=3)
    assert removed == len(old)
    assert remaining(settings) == (set(ids[len(old) :]), 2 * len(kept))
    assert remove_old_deliveries(settings.database_url, (30 * DAY).total_seconds()) == 0


def test_one_run_removes_a_bounded_number_and_the_next_run_goes_on(settings: Settings) -> None:
    add_deliveries(settings, *[("delivered", 40 * DAY)] * 7)
    keep_s = (30 * DAY).total_seconds()
    assert remove_old_deliveries(settings.database_url, keep_s, batch=2, max_batches=2) == 4
    assert len(remaining(settings)[0]) == 3
    assert remove_old_deliveries(settings.database_url, keep_s, batch=2, max_batches=2) == 3
    assert remaining(settings) == (set(), 0)


def test_the_scheduler_removes_them_hourly_by_the_history_setting(settings: Settings) -> None:
    ids = add_deliveries(settings, ("delivered", 3 * DAY), ("delivered", 1 * DAY))
    now = [0.0]
    short = settings.with_(webhook_history_s=(2 * DAY).total_seconds())
    housekeeping = Housekeeping(short, clock=lambda: now[0])
    now[0] = DELIVERY_CLEANUP_INTERVAL_S - 1
    housekeeping.maybe_run()
    assert len(remaining(settings)[0]) == 2, "not before its interval"
    now[0] = DELIVERY_CLEANUP_INTERVAL_S
    housekeeping.maybe_run()
    assert remaining(settings) == ({ids[1]}, 2)


def test_the_age_is_the_events_not_the_last_attempts(settings: Settings) -> None:
    (delivery_id,) = add_deliveries(settings, ("failed", 10 * DAY))
    with session_scope(settings.database_url) as session:
        session.get(WebhookDelivery, delivery_id).last_attempt_at = utcnow()
    later: datetime = utcnow() + 25 * DAY
    assert remove_old_deliveries(settings.database_url, (30 * DAY).total_seconds(), later) == 1
