"""The checkpoint retention sweep (shared/retention.py) on SQLite and a local folder."""

from __future__ import annotations

import json
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from scheduler.housekeeping import Housekeeping
from shared.config import Settings
from shared.db import session_scope
from shared.models import Artifact, Job
from shared.retention import sweep_checkpoints
from shared.states import JobState
from shared.storage import open_storage
from shared.storage.keys import METRICS_NAME, checkpoint_name, job_prefix
from tests.helpers import auth, train_request
from tests.unit.job_factories import move, queued_job
from worker.artifacts import put_artifact

S = JobState


def job_with_checkpoints(
    client: FlaskClient,
    token: str,
    settings: Settings,
    steps: list[int],
    keep: dict[str, Any] | None,
    *path: JobState,
) -> str:
    request = train_request("kept", **({"keep_checkpoints": keep} if keep else {}))
    answer = client.post("/api/v1/jobs", json=request, headers=auth(token))
    assert answer.status_code == 201, answer.get_json()
    job_id = str(answer.get_json()["id"])
    move(settings, job_id, S.QUEUED, *path)
    store = open_storage(settings)
    for step in steps:
        name = checkpoint_name(step)
        put_artifact(settings.database_url, store, job_id, name, "checkpoint", b"w" * 10, step)
    return job_id


def evaluations(settings: Settings, job_id: str, high_quality: dict[int, float]) -> None:
    """The job's metrics.jsonl with one evaluation line per step."""
    lines = [{"step": step, "eval": {"high_quality": hq}} for step, hq in high_quality.items()]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    store = open_storage(settings)
    put_artifact(settings.database_url, store, job_id, METRICS_NAME, "metrics", data)


def stored_steps(settings: Settings, job_id: str) -> tuple[list[int], list[str]]:
    """(checkpoint steps with rows, checkpoint objects in the store)."""
    with session_scope(settings.database_url) as session:
        steps = session.scalars(
            select(Artifact.step)
            .where(Artifact.job_id == job_id, Artifact.kind == "checkpoint")
            .order_by(Artifact.step)
        ).all()
    objects = [
        info.key.removeprefix(job_prefix(job_id))
        for info in open_storage(settings).list(job_prefix(job_id) + "checkpoints/")
    ]
    return [int(step) for step in steps if step is not None], objects


FINISHED = (S.SCHEDULED, S.RUNNING, S.SUCCEEDED)


def test_the_last_n_and_the_best_checkpoint_are_kept_and_the_rest_go(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    keep = {"last": 2, "best": "high_quality"}
    job_id = job_with_checkpoints(client, alice, settings, [1, 2, 3, 4, 5], keep, *FINISHED)
    evaluations(settings, job_id, {1: 0.5, 2: 0.97, 3: 0.6, 4: 0.7, 5: 0.8})
    untouched = job_with_checkpoints(client, alice, settings, [1, 2, 3], None, *FINISHED)

    deleted = sweep_checkpoints(settings.database_url, open_storage(settings))

    assert deleted == 2
    assert stored_steps(settings, job_id) == (
        [2, 4, 5],
        [checkpoint_name(2), checkpoint_name(4), checkpoint_name(5)],
    )
    assert stored_steps(settings, untouched)[0] == [1, 2, 3], "no keep_checkpoints: all kept"
    assert sweep_checkpoints(settings.database_url, open_storage(settings)) == 0


def test_a_running_job_keeps_its_latest_and_goes_on_writing(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    job_id = job_with_checkpoints(
        client, alice, settings, [1, 2, 3], {"last": 1}, S.SCHEDULED, S.RUNNING
    )

    assert sweep_checkpoints(settings.database_url, open_storage(settings)) == 2

    assert stored_steps(settings, job_id) == ([3], [checkpoint_name(3)])
    store = open_storage(settings)
    put_artifact(settings.database_url, store, job_id, checkpoint_name(4), "checkpoint", b"x", 4)
    assert stored_steps(settings, job_id)[0] == [3, 4]


def test_a_checkpoint_an_unfinished_sampling_job_names_is_kept(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    source = job_with_checkpoints(client, alice, settings, [1, 2, 3], {"last": 1}, *FINISHED)
    reader = queued_job(settings, "alice")
    with session_scope(settings.database_url) as session:
        job = session.get(Job, reader)
        assert job is not None
        job.kind, job.spec = "sample", {"job_id": source, "step": 1, "seeds": [0]}

    sweep_checkpoints(settings.database_url, open_storage(settings))

    assert stored_steps(settings, source)[0] == [1, 3]


def test_keep_checkpoints_is_checked_at_submit(client: FlaskClient, alice: str) -> None:
    for keep, path in (
        ({"last": 0}, "spec.keep_checkpoints.last"),
        ({"best": "beauty"}, "spec.keep_checkpoints.best"),
    ):
        answer = client.post(
            "/api/v1/jobs", json=train_request(keep_checkpoints=keep), headers=auth(alice)
        )
        assert answer.status_code == 422, keep
        assert answer.get_json()["errors"][0]["path"] == path, answer.get_json()


def test_the_scheduler_sweeps_once_an_interval(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    job_id = job_with_checkpoints(client, alice, settings, [1, 2], {"last": 1}, *FINISHED)
    now = [0.0]
    housekeeping = Housekeeping(settings.with_(retention_interval_s=60.0), clock=lambda: now[0])

    now[0] = 59.0
    housekeeping.maybe_run()
    assert stored_steps(settings, job_id)[0] == [1, 2], "not yet"
    now[0] = 60.0
    housekeeping.maybe_run()
    assert stored_steps(settings, job_id)[0] == [2]
