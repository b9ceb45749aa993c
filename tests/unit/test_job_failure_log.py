"""What a failed job tells its owner: the error and where in their spec or data it came
from, in its log.txt and its error; the traceback, which names the server's files, goes only
to the worker's own log (on the cold path, the launcher's output the supervisor logs; on the
warm path, the sampler's logger)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import worker
from shared.config import Settings
from shared.db import session_scope
from shared.jobs.requests import submit_job
from shared.models import User
from shared.specs import validate_job_request
from shared.storage import keys, open_storage
from tests.attempts import attempt_of
from tests.data_builders import grey_pngs
from tests.helpers import train_request
from tests.unit.job_factories import S, move
from worker.gan.errors import DataError
from worker.supervisor import supervise
from worker.warm.process import _failure

WORKER_CODE = str(Path(worker.__file__).resolve().parent)


def _faces_linking_out(tmp_path: Path) -> Path:
    """A data root holding a folder of images, one of them a link to a file outside it."""
    faces, outside = tmp_path / "roots" / "faces", tmp_path / "private"
    faces.mkdir(parents=True)
    outside.mkdir()
    for name, data in grey_pngs(4).items():
        (faces / name).write_bytes(data)
    for name, data in grey_pngs(1, prefix="secret").items():
        (outside / name).write_bytes(data)
        (faces / name).symlink_to(outside / name)
    return faces


def _running_job(settings: Settings, faces: Path) -> str:
    spec = {
        "model": {"family": "dcgan", "width": 8},
        "latent": {"dim": 4},
        "data": {"source": "images", "path": str(faces)},
        "train": {"steps": 2, "batch_size": 2, "seed": 0},
        "checkpoint_every": 2,
        "sample_every": 2,
    }
    request, job_spec = validate_job_request(train_request("faces", **spec))
    with session_scope(settings.database_url) as session:
        user = User(name="alice")
        session.add(user)
        session.flush()
        job = submit_job(
            session,
            user,
            "train",
            request.name,
            job_spec,
            max_attempts=3,
            data_roots=settings.data_roots,
        )
        job_id = job.id
    move(settings, job_id, S.QUEUED, S.SCHEDULED, S.RUNNING)
    return job_id


def _log_txt(settings: Settings, job_id: str) -> str:
    return open_storage(settings).get(keys.artifact_key(job_id, keys.LOG_NAME)).decode()


@pytest.mark.processes  # starts the launcher and a rank: outside `make test-fast`
def test_a_job_failing_on_its_data_tells_the_owner_where_and_the_worker_log_the_traceback(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    faces = _faces_linking_out(tmp_path)
    settings = settings.with_(data_roots=(faces.parent,))
    job_id = _running_job(settings, faces)
    with caplog.at_level(logging.WARNING, logger="worker.supervisor"):
        outcome = supervise(settings, open_storage(settings), job_id, 1)
    # The sandbox's Landlock refuses the file outside the data roots before the rank's own
    # check of the opened file could: either way the member is named and nothing is read.
    reason = (
        "member 'secret000.png' of faces cannot be read (permission denied): it lies outside "
        "the data roots"
    )
    assert outcome.status == "failed"  # the job's fault: failed at once, not retried
    assert outcome.error.startswith(reason)
    log_txt = _log_txt(settings, job_id)
    assert f"rank 0 failed: {reason}" in log_txt
    for server_detail in ("Traceback", WORKER_CODE, str(settings.home)):
        assert server_detail not in log_txt, server_detail
    assert "Traceback (most recent call last)" in caplog.text
    assert f"{WORKER_CODE}/rank.py" in caplog.text


def test_the_warm_sampler_keeps_the_traceback_out_of_the_jobs_log(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = _running_job(settings.with_(data_roots=(tmp_path,)), tmp_path)
    with attempt_of(settings, open_storage(settings), job_id, 1, tmp_path) as attempt:
        reporter = attempt.reporter()
        try:
            raise DataError("spec.data.path: member 'x.png' of faces cannot be decoded")
        except DataError as error:
            with caplog.at_level(logging.WARNING, logger="worker.warm.process"):
                result = _failure(error, reporter)
        reporter.flush()
        reporter.close()
    assert result == {
        "status": "failed",
        "error": "spec.data.path: member 'x.png' of faces cannot be decoded",
    }
    log_txt = _log_txt(settings, job_id)
    assert "rank 0 failed: spec.data.path: member 'x.png'" in log_txt
    assert "Traceback" not in log_txt and __file__ not in log_txt
    assert "Traceback (most recent call last)" in caplog.text and __file__ in caplog.text
