"""Dispatching over the real Redis, and compare-and-set under real PostgreSQL concurrency."""

import json
import threading

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import select

from shared.config import Settings
from shared.db import session_scope
from shared.dispatcher import dispatch_once
from shared.messaging import make_celery
from shared.models import Job, JobEvent
from shared.states import JobState, transition
from tests.helpers import auth, train_request

pytestmark = pytest.mark.integration


def submit(client: FlaskClient, token: str) -> str:
    response = client.post("/api/v1/jobs", json=train_request(), headers=auth(token))
    assert response.status_code == 201
    return response.get_json()["id"]


def test_dispatch_schedules_the_job_and_sends_only_its_id_and_attempt(
    client: FlaskClient, alice: str, settings: Settings, redis_client: redis.Redis
) -> None:
    job_id = submit(client, alice)
    assert dispatch_once(settings, make_celery(settings)) == 1
    with session_scope(settings.database_url) as session:
        job = session.get(Job, job_id)
        assert job.state == "scheduled" and job.task_id
    messages = redis_client.lrange(settings.queue, 0, -1)
    assert len(messages) == 1
    envelope = json.loads(messages[0])
    args, kwargs, _ = json.loads(__import__("base64").b64decode(envelope["body"]))
    assert args == [] and kwargs == {"job_id": job_id, "attempt": 1}
    assert dispatch_once(settings, make_celery(settings)) == 0, "a scheduled job is not resent"


def test_dispatch_with_the_broker_down_leaves_the_job_queued(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    job_id = submit(client, alice)
    unreachable = settings.with_(broker_url="redis://127.0.0.1:1/0")
    celery = make_celery(unreachable)
    celery.conf.broker_connection_max_retries = 1
    celery.conf.task_publish_retry_policy = {"max_retries": 0}
    assert dispatch_once(unreachable, celery) == 0
    with session_scope(settings.database_url) as session:
        assert session.get(Job, job_id).state == "queued"
        reasons = list(session.scalars(select(JobEvent.reason).where(JobEvent.job_id == job_id)))
    assert any(r.startswith("broker unavailable") for r in reasons)


def test_only_one_of_many_racing_claims_wins(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    job_id = submit(client, alice)
    with session_scope(settings.database_url) as session:
        transition(session, job_id, JobState.QUEUED, JobState.SCHEDULED, "dispatched")
    barrier = threading.Barrier(6)
    wins: list[bool] = []

    def claim() -> None:
        barrier.wait()
        with session_scope(settings.database_url) as session:
            wins.append(
                transition(session, job_id, JobState.SCHEDULED, JobState.RUNNING, "go", attempt=1)
            )

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * 5 + [True]
    with session_scope(settings.database_url) as session:
        running_events = session.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.to_state == "running")
        ).all()
    assert len(running_events) == 1
