"""A submission on PostgreSQL writes its job and its `queued` event in one statement
(shared/states.py insert_created): both exist or neither, the columns it leaves out are SQL
NULL (not JSON null), and a sweep's children each get theirs. A plain submission runs without
a transaction (api/state.py statement_atomic); one with an Idempotency-Key, or a sweep, in one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import event, select, text

from shared.config import Settings
from shared.db import get_engine, session_scope
from shared.models import Job, JobEvent
from tests.helpers import RING_SPEC, auth, train_request


@contextmanager
def statements(settings: Settings, autocommit: list[bool] | None = None) -> Iterator[list[str]]:
    """The SQL sent to the settings' database while the block runs; `autocommit` gets, for
    each statement, whether its connection ran it outside a transaction."""
    sent: list[str] = []

    def record(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)
        if autocommit is not None:
            autocommit.append(conn.connection.dbapi_connection.autocommit)

    engine = get_engine(settings.database_url)
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_a_submission_writes_its_job_and_its_queued_event_in_one_statement(
    client: FlaskClient, settings: Settings, alice: str
) -> None:
    with statements(settings) as sent:
        response = client.post("/api/v1/jobs", json=train_request("one"), headers=auth(alice))
    assert response.status_code == 201, response.get_json()
    inserts = [s for s in sent if s.lstrip().upper().startswith(("INSERT", "WITH"))]
    assert len(inserts) == 1, inserts
    assert "INSERT INTO jobs" in inserts[0] and "INSERT INTO job_events" in inserts[0]
    job_id = response.get_json()["id"]
    with session_scope(settings.database_url) as session:
        job = session.get(Job, job_id)
        assert job is not None and job.state == "queued" and job.attempt == 1
        assert job.tags == [] and job.note == "" and job.priority == 0
        nulls = session.execute(
            text(
                "SELECT progress IS NULL, metrics IS NULL, placement IS NULL, warnings IS NULL"
                " FROM jobs WHERE id = :id"
            ),
            {"id": job_id},
        ).one()
        assert all(nulls), "left-out JSON columns are SQL NULL"
        (first,) = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)).all()
        assert (first.from_state, first.to_state, first.attempt, first.reason) == (
            None,
            "queued",
            1,
            "submitted",
        )
        assert first.created_at == job.created_at


def test_only_a_plain_submission_runs_without_a_transaction(
    client: FlaskClient, settings: Settings, alice: str
) -> None:
    """Plain: its token lookup and its one INSERT each commit as they run (no BEGIN, no
    COMMIT). With an Idempotency-Key the key's record must commit with the job, and a sweep
    writes many rows: both stay in one transaction."""
    sweep = {
        "kind": "sweep",
        "name": "s",
        "spec": {"base": RING_SPEC, "grid": {"train.seed": [0, 1]}},
    }
    keyed = {**auth(alice), "Idempotency-Key": "creation-key-1"}
    cases = [(train_request("plain"), auth(alice), True), (train_request("keyed"), keyed, False),
             (sweep, auth(alice), False)]  # fmt: skip
    for body, headers, plain in cases:
        autocommit: list[bool] = []
        with statements(settings, autocommit) as sent:
            response = client.post("/api/v1/jobs", json=body, headers=headers)
        assert response.status_code == 201, response.get_json()
        assert len(sent) >= 2 and autocommit == [plain] * len(sent), (body["name"], sent)
    with session_scope(settings.database_url) as session:
        assert session.scalar(text("SELECT count(*) FROM idempotency_keys")) == 1


def test_a_sweep_and_each_child_get_their_queued_event_and_the_children_name_it(
    client: FlaskClient, settings: Settings, alice: str
) -> None:
    spec = {"base": RING_SPEC, "grid": {"train.seed": [0, 1, 2]}}
    response = client.post(
        "/api/v1/jobs", json={"kind": "sweep", "name": "s", "spec": spec}, headers=auth(alice)
    )
    assert response.status_code == 201, response.get_json()
    sweep_id = response.get_json()["id"]
    with session_scope(settings.database_url) as session:
        kids = session.scalars(select(Job).where(Job.parent_id == sweep_id)).all()
        assert sorted(k.name for k in kids) == ["s/0", "s/1", "s/2"]
        for job_id in [sweep_id, *(k.id for k in kids)]:
            states = session.scalars(
                select(JobEvent.to_state).where(JobEvent.job_id == job_id)
            ).all()
            assert states == ["queued"], job_id
