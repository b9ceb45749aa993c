"""The orphan collector (shared/orphans.py) on SQLite and a local folder: row-less objects of
finished, deleted and unknown jobs go once past the grace period; nothing else does."""

from __future__ import annotations

import os
import time
from pathlib import Path

from flask.testing import FlaskClient

from shared.config import Settings
from shared.models import new_id
from shared.orphans import collect_orphans, find_orphans
from shared.storage import open_storage
from shared.storage.keys import LOG_NAME, TIMELINE_NAME, artifact_key, checkpoint_name
from tests.helpers import auth
from tests.unit.job_factories import running_job
from tests.unit.storage_rows import finished_job

HOUR = 3600.0


def put_aged(settings: Settings, key: str, age_s: float) -> None:
    """An object written `age_s` ago, as a writer killed before its row would leave it."""
    store = open_storage(settings)
    store.put(key, b"left behind")
    path = Path(store.root, key)  # type: ignore[attr-defined]
    then = time.time() - age_s
    os.utime(path, (then, then))


def test_only_old_row_less_objects_of_jobs_nothing_writes_to_any_more_are_collected(
    client: FlaskClient, alice: str, settings: Settings
) -> None:
    finished = finished_job(settings, "alice", 10)
    running = running_job(settings, "alice")
    deleted = finished_job(settings, "alice", 10)
    assert client.delete(f"/api/v1/jobs/{deleted}", headers=auth(alice)).status_code == 204
    unknown = new_id()
    expected = {
        artifact_key(finished, LOG_NAME),  # its row never came
        artifact_key(deleted, LOG_NAME),  # its delete failed
        artifact_key(unknown, LOG_NAME),  # no such job
    }
    for key in expected:
        put_aged(settings, key, 2 * HOUR)
    put_aged(settings, artifact_key(running, LOG_NAME), 2 * HOUR)  # its row may yet come
    put_aged(settings, artifact_key(finished, TIMELINE_NAME), 0.5 * HOUR)  # within the grace
    store = open_storage(settings)

    assert set(find_orphans(settings.database_url, store, HOUR)) == expected
    collected = collect_orphans(settings.database_url, store, HOUR)

    assert set(collected) == expected
    left = {info.key for info in store.list("jobs/")}
    assert left == {
        artifact_key(finished, checkpoint_name(1)),  # it has its row
        artifact_key(finished, TIMELINE_NAME),
        artifact_key(running, LOG_NAME),
    }
    listed = client.get(f"/api/v1/jobs/{finished}/artifacts", headers=auth(alice)).get_json()
    assert [a["name"] for a in listed["artifacts"]] == [checkpoint_name(1)]
    assert collect_orphans(settings.database_url, store, HOUR) == []


def test_a_run_deletes_at_most_its_limit(alice: str, settings: Settings) -> None:
    for _ in range(3):
        put_aged(settings, artifact_key(new_id(), LOG_NAME), 2 * HOUR)
    store = open_storage(settings)

    assert len(collect_orphans(settings.database_url, store, HOUR, limit=2)) == 2

    assert len(store.list("jobs/")) == 1
