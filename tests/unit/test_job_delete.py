"""DELETE /api/v1/jobs/<id>: a finished job's objects, rows and events go; nothing else does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from scheduler.pool_state import recent_usage
from shared.config import Settings
from shared.db import session_scope
from shared.models import Artifact, Job, JobEvent
from shared.states import JobState
from shared.storage import open_storage
from shared.storage.keys import LOG_NAME, artifact_key
from tests.helpers import auth, user_token
from tests.unit.job_factories import move, queued_job, running_job
from tests.unit.storage_rows import finished_job

PROBLEM = "application/problem+json"
S = JobState


def job_folder(settings: Settings, job_id: str) -> Path:
    return Path(open_storage(settings).root) / "jobs" / job_id  # type: ignore[attr-defined]


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def rows_of(settings: Settings, job_id: str) -> tuple[bool, int, int]:
    """(whether the job is marked deleted, its event rows, its artifact rows)."""
    with session_scope(settings.database_url) as session:
        job = session.get(Job, job_id)
        assert job is not None, "a deleted job's row stays, marked"
        events, artifacts = (
            session.scalar(select(func.count()).select_from(model).where(model.job_id == job_id))
            for model in (JobEvent, Artifact)
        )
        return job.deleted_at is not None, int(events or 0), int(artifacts or 0)


def test_deleting_a_finished_job_removes_its_objects_rows_and_events(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    doomed = finished_job(settings, "alice", 10, 20)
    kept = finished_job(settings, "alice", 30)
    # An object without a row (an upload cut off before its row was written) goes too.
    open_storage(settings).put(artifact_key(doomed, LOG_NAME), b"half a log")
    assert len(files_under(job_folder(settings, doomed))) == 3

    deleted = client.delete(f"/api/v1/jobs/{doomed}", headers=auth(alice))

    assert deleted.status_code == 204
    assert files_under(job_folder(settings, doomed)) == []
    assert rows_of(settings, doomed) == (True, 4, 0), "marked, its events kept, no artifacts"
    for route in ("", "/events", "/artifacts"):
        gone = client.get(f"/api/v1/jobs/{doomed}{route}", headers=auth(alice))
        assert gone.status_code == 404 and gone.mimetype == PROBLEM, route
    listed = client.get("/api/v1/jobs", headers=auth(alice)).get_json()["jobs"]
    assert [job["id"] for job in listed] == [kept]
    assert files_under(job_folder(settings, kept)) == ["checkpoints/step-000001.pt"]
    assert rows_of(settings, kept) == (False, 4, 1)
    again = client.delete(f"/api/v1/jobs/{doomed}", headers=auth(alice))
    assert again.status_code == 404


def test_an_unfinished_job_is_not_deleted_and_the_conflict_names_its_state(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    running = running_job(settings, "alice")
    open_storage(settings).put(artifact_key(running, LOG_NAME), b"still writing")
    queued = queued_job(settings, "alice")

    refused = client.delete(f"/api/v1/jobs/{running}", headers=auth(alice))

    assert refused.status_code == 409 and refused.mimetype == PROBLEM
    assert f"job {running} is running" in refused.get_json()["detail"]
    assert files_under(job_folder(settings, running)) == [LOG_NAME]
    assert rows_of(settings, running)[0] is False
    waiting = client.delete(f"/api/v1/jobs/{queued}", headers=auth(alice))
    assert waiting.status_code == 409 and "is queued" in waiting.get_json()["detail"]


def test_another_users_job_is_not_found_and_an_admin_may_delete_it(
    client: FlaskClient, alice: str, bob: str, settings: Settings
) -> None:
    job_id = finished_job(settings, "alice", 10)

    stranger = client.delete(f"/api/v1/jobs/{job_id}", headers=auth(bob))

    assert stranger.status_code == 404 and stranger.mimetype == PROBLEM
    assert files_under(job_folder(settings, job_id)) == ["checkpoints/step-000001.pt"]
    root = user_token(settings, "root", admin=True)
    assert client.delete(f"/api/v1/jobs/{job_id}", headers=auth(root)).status_code == 204
    assert rows_of(settings, job_id)[0] is True


def test_a_job_an_unfinished_job_reads_from_is_kept(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    source = finished_job(settings, "alice", 10)
    reader = queued_job(settings, "alice")
    with session_scope(settings.database_url) as session:  # a sampling job waiting on it
        job = session.get(Job, reader)
        assert job is not None
        job.kind, job.spec = "sample", {"job_id": source, "seeds": [0]}

    refused = client.delete(f"/api/v1/jobs/{source}", headers=auth(alice))

    assert refused.status_code == 409 and reader in refused.get_json()["detail"]
    move(settings, reader, S.QUEUED, S.CANCELLED)
    assert client.delete(f"/api/v1/jobs/{source}", headers=auth(alice)).status_code == 204


@pytest.mark.parametrize(
    "names_it",
    [
        lambda source: {"job_id": "x", "latents": {"job_id": source, "name": "latents.npy"}},
        lambda source: {"job_id": "x", "invert": {"images": {"job_id": source, "name": "a.png"}}},
    ],
    ids=["latents", "inversion images"],
)
def test_a_job_whose_artifacts_an_unfinished_job_reads_is_kept(
    client: FlaskClient, alice: str, settings: Settings, names_it: Any
) -> None:
    source = finished_job(settings, "alice", 10)
    reader = queued_job(settings, "alice")
    with session_scope(settings.database_url) as session:
        job = session.get(Job, reader)
        assert job is not None
        job.kind, job.spec = "sample", names_it(source)

    refused = client.delete(f"/api/v1/jobs/{source}", headers=auth(alice))

    assert refused.status_code == 409 and reader in refused.get_json()["detail"]


def test_a_deleted_job_still_counts_in_fair_share_and_cannot_be_sampled(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    job_id = finished_job(settings, "alice", 10)
    with session_scope(settings.database_url) as session:
        before = recent_usage(session, settings.usage_half_life_s)

    assert client.delete(f"/api/v1/jobs/{job_id}", headers=auth(alice)).status_code == 204

    with session_scope(settings.database_url) as session:
        after = recent_usage(session, settings.usage_half_life_s)
        owner = session.get(Job, job_id).owner_id  # type: ignore[union-attr]
    assert after[owner] == pytest.approx(before[owner]) and after[owner] > 0
    sample = {"kind": "sample", "name": "s", "spec": {"job_id": job_id, "seeds": [0]}}
    refused = client.post("/api/v1/jobs", json=sample, headers=auth(alice))
    assert refused.status_code == 422
    assert refused.get_json()["errors"][0] == {
        "path": "spec.job_id",
        "message": f"no job {job_id!r} among your jobs",
    }
