"""A job's state changes, a page at a time (GET /api/v1/jobs/<id>/events).

A job requeued hundreds of times has a thousand events; answering all of them took 22 ms at
10,000,000 events (bench/db_scale.py), and the answer grows without bound with the job's
life. Pages follow the event id (a keyset, as the job listing's cursor): each is one range of
the job's events, whatever its depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Row, bindparam, select
from sqlalchemy.orm import Session

from shared.jobs.requests import view_job
from shared.models import JobEvent, User

# Events in a page when the caller gives no limit: every event of a job that was not
# requeued dozens of times (a normal job has 4 to 10), so clients written before pages see
# the whole list; and the most one page may hold.
DEFAULT_EVENTS_PAGE_SIZE = 100
MAX_EVENTS_PAGE_SIZE = 1000

# What an event's JSON shows (api/serializers.event_json), read as plain rows: building ORM
# objects for a job's 1,000 events took 26 ms where the same SQL by psycopg took 6
# (bench/db_scale.py, 1,000,000 jobs). One more row than the page says whether another follows.
_EVENTS = (
    select(JobEvent.id, JobEvent.from_state, JobEvent.to_state, JobEvent.attempt,
           JobEvent.reason, JobEvent.created_at)
    .where(JobEvent.job_id == bindparam("job_id"), JobEvent.id > bindparam("after"))
    .order_by(JobEvent.id)
    .limit(bindparam("rows"))
)  # fmt: skip


# (id, from_state, to_state, attempt, reason, created_at)
EventRow = Row[int, str | None, str, int, str, datetime]


@dataclass(frozen=True)
class EventPage:
    """Events oldest first; `next_cursor` (the last one's id) asks for the page after, None
    when this page ends the job's events so far."""

    events: Sequence[EventRow]
    next_cursor: str | None


def job_events(
    session: Session,
    owner: User,
    job_id: str,
    *,
    after: int = 0,
    limit: int = DEFAULT_EVENTS_PAGE_SIZE,
) -> EventPage:
    """The job's events after event id `after`, at most `limit`, if `owner` may see the job
    (as view_job decides)."""
    view_job(session, owner, job_id)
    rows = list(session.execute(_EVENTS, {"job_id": job_id, "after": after, "rows": limit + 1}))
    if len(rows) <= limit:
        return EventPage(rows, None)
    return EventPage(rows[:limit], str(rows[limit - 1].id))
