"""Jobs whose worker went silent are moved on, never left "running" forever."""

from datetime import timedelta

from flask.testing import FlaskClient
from sqlalchemy import update

from shared.config import Settings
from shared.db import session_scope
from shared.jobs.reports import heartbeat
from shared.models import Job, utcnow
from shared.pool.reconciler import reconcile
from shared.states import JobState, transition
from tests.helpers import auth, train_request


def running_job(client: FlaskClient, token: str, settings: Settings, attempt: int = 1) -> str:
    job_id = client.post("/api/v1/jobs", json=train_request(), headers=auth(token)).get_json()["id"]
    with session_scope(settings.database_url) as session:
        session.execute(update(Job).where(Job.id == job_id).values(attempt=attempt))
        transition(session, job_id, JobState.QUEUED, JobState.SCHEDULED, "dispatched")
        transition(session, job_id, JobState.SCHEDULED, JobState.RUNNING, "started")
    return job_id


def go_silent(settings: Settings, job_id: str, seconds: float) -> None:
    with session_scope(settings.database_url) as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(updated_at=utcnow() - timedelta(seconds=seconds))
        )


def test_a_silent_running_job_is_lost_and_requeued_for_its_next_attempt(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    job_id = running_job(client, alice, settings)
    go_silent(settings, job_id, 300)
    with session_scope(settings.database_url) as session:
        assert reconcile(session) == [job_id]
    job = client.get(f"/api/v1/jobs/{job_id}", headers=auth(alice)).get_json()
    assert job["state"] == "queued" and job["attempt"] == 2
    events = client.get(f"/api/v1/jobs/{job_id}/events", headers=auth(alice)).get_json()["events"]
    assert [(e["from"], e["to"]) for e in events[-2:]] == [("running", "lost"), ("lost", "queued")]
    assert events[-2]["reason"].startswith("no heartbeat")


def test_a_heartbeat_keeps_a_quiet_job_alive(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    job_id = running_job(client, alice, settings)
    go_silent(settings, job_id, 300)
    with session_scope(settings.database_url) as session:
        heartbeat(session, job_id, attempt=1)
    with session_scope(settings.database_url) as session:
        assert reconcile(session) == []


def test_a_job_lost_with_no_attempts_left_fails_with_a_reason(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    job_id = running_job(client, alice, settings, attempt=settings.max_attempts)
    go_silent(settings, job_id, 300)
    with session_scope(settings.database_url) as session:
        reconcile(session)
    job = client.get(f"/api/v1/jobs/{job_id}", headers=auth(alice)).get_json()
    assert job["state"] == "failed" and "no attempts left" in job["error"]
