"""GET /metrics: the pool's figures read from the database at scrape time, and the API's own."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from api.app import create_app
from shared import job_timings
from shared.config import Settings
from shared.db import session_scope
from shared.jobs.reports import report_progress
from shared.models import Job, JobEvent
from shared.pool.nodes import register_node
from shared.pool.reservations import reserve
from shared.states import Move, transition, transition_many
from tests.helpers import auth
from tests.unit.job_factories import S, move, queued_job


def scrape(
    client: FlaskClient, **headers: str
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def backdate(settings: Settings, job_id: str, seconds: float) -> None:
    """Move the job's queued event and its start (if any) `seconds` into the past: its next
    start waits that long, its end runs that long."""
    back = timedelta(seconds=seconds)
    with session_scope(settings.database_url) as session:
        job = session.get_one(Job, job_id)
        if job.started_at is not None:
            job.started_at -= back
        for event in session.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.to_state == "queued")
        ):
            event.created_at -= back


def started(settings: Settings, waited: float) -> str:
    job_id = queued_job(settings)
    backdate(settings, job_id, waited)
    move(settings, job_id, S.QUEUED, S.SCHEDULED, S.RUNNING)
    return job_id


def test_metrics_count_jobs_waits_durations_devices_and_speed(
    client: FlaskClient, settings: Settings, alice: str
) -> None:
    waiting = queued_job(settings)
    running = started(settings, waited=3)
    done = started(settings, waited=42)
    backdate(settings, done, 600)
    move(settings, done, S.RUNNING, S.SUCCEEDED)
    with session_scope(settings.database_url) as session:
        register_node(
            session,
            name="gpu-1",
            queue="q",
            devices=[{"index": i, "kind": "gpu"} for i in range(4)],
            labels={},
        )
        reserve(session, running, 1, (("gpu-1", (0,)),))
        report_progress(session, running, 1, {"step": 5, "images_per_second": 1234.5}, {})
    client.get("/api/v1/jobs", headers=auth(alice))  # one timed request, at least

    seen = scrape(client)
    assert seen[("ganforge_database_up", ())] == 1
    assert seen[("ganforge_jobs", (("state", "queued"),))] == 1
    assert seen[("ganforge_jobs", (("state", "running"),))] == 1
    assert seen[("ganforge_jobs", (("state", "succeeded"),))] == 1
    assert seen[("ganforge_jobs", (("state", "failed"),))] == 0
    wait = "ganforge_job_queue_wait_seconds"
    assert seen[(f"{wait}_count", (("kind", "train"),))] == 2
    assert seen[(f"{wait}_sum", (("kind", "train"),))] == pytest.approx(45, abs=2)
    assert seen[(f"{wait}_bucket", (("kind", "train"), ("le", "5.0")))] == 1
    assert seen[(f"{wait}_bucket", (("kind", "train"), ("le", "60.0")))] == 2
    duration = (("kind", "train"), ("state", "succeeded"))
    assert seen[("ganforge_job_duration_seconds_sum", duration)] == pytest.approx(600, abs=2)
    assert seen[("ganforge_job_duration_seconds_count", duration)] == 1
    assert seen[("ganforge_node_devices", (("node", "gpu-1"), ("status", "busy")))] == 1
    assert seen[("ganforge_node_devices", (("node", "gpu-1"), ("status", "free")))] == 3
    speed = (("job_id", running), ("kind", "train"), ("owner", "alice"))
    assert seen[("ganforge_job_images_per_second", speed)] == 1234.5
    assert waiting not in {dict(labels).get("job_id") for _, labels in seen}
    timed = (("method", "GET"), ("route", "/api/v1/jobs"), ("status", "200"))
    assert seen[("ganforge_api_request_duration_seconds_count", timed)] >= 1


def test_metrics_ask_for_the_token_when_one_is_set(settings: Settings) -> None:
    client = create_app(settings.with_(metrics_token="scrape-me")).test_client()
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused.mimetype == "application/problem+json"
    assert client.get("/metrics", headers=auth("wrong")).status_code == 401
    assert scrape(client, **auth("scrape-me"))[("ganforge_database_up", ())] == 1


def test_a_start_rolled_back_is_not_counted_and_counts_outlive_the_app(
    client: FlaskClient, settings: Settings
) -> None:
    job_id = queued_job(settings)
    with pytest.raises(RuntimeError), session_scope(settings.database_url) as session:
        assert transition(session, job_id, S.QUEUED, S.RUNNING, "test")
        raise RuntimeError("the caller failed after the move")
    waits = "ganforge_job_queue_wait_seconds_count"
    assert (waits, (("kind", "train"),)) not in scrape(client)

    move(settings, job_id, S.QUEUED, S.RUNNING)
    another_process = create_app(settings).test_client()
    assert scrape(another_process)[(waits, (("kind", "train"),))] == 1


def test_jobs_started_together_count_one_wait_each_and_a_stale_move_none(
    settings: Settings,
) -> None:
    started, also, stale = (queued_job(settings, name=n) for n in ("a", "b", "c"))
    for job_id in (started, also, stale):
        move(settings, job_id, S.QUEUED, S.SCHEDULED)
    moves = [Move(started, 1, "claimed"), Move(also, 1, "claimed"), Move(stale, 7, "claimed")]
    with session_scope(settings.database_url) as session:
        assert transition_many(session, moves, S.SCHEDULED, S.RUNNING) == {started, also}
        waits = job_timings.histograms(session, job_timings.QUEUE_WAIT)
    assert sum(n for n, _ in waits[("train", "")]) == 2
