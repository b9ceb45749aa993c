"""GANFORGE_LOG_FORMAT=json: one JSON object per record, with the job it is about."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from flask import Flask

from shared.config import ConfigError, Settings
from shared.logs import job_context, make_handler


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = make_handler("json")
    handler.setStream(stream)  # type: ignore[attr-defined]
    logger = logging.getLogger("ganforge.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger, stream
    logger.removeHandler(handler)


def records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_record_is_one_json_line_with_the_job_and_attempt(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = json_log
    logger.info("plain %s", "record")
    with job_context("ab" * 16, 2):
        logger.warning("job %s is slow", "x")
    logger.info("named at the call", extra={"job_id": "cd" * 16})
    plain, in_job, named = records(stream)
    assert set(plain) == {"time", "level", "logger", "message"}
    assert plain["message"] == "plain record" and plain["level"] == "INFO"
    assert plain["logger"] == "ganforge.test.json" and str(plain["time"]).endswith("Z")
    assert in_job["job_id"] == "ab" * 16 and in_job["attempt"] == 2
    assert in_job["level"] == "WARNING" and in_job["message"] == "job x is slow"
    assert named["job_id"] == "cd" * 16 and "attempt" not in named


def test_an_exception_stays_inside_its_line(json_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_log
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        logger.exception("it failed")
    (record,) = records(stream)
    assert "ValueError: bad\nthing" in str(record["exception"])


def test_api_records_about_a_job_carry_its_id(
    app: Flask, json_log: tuple[logging.Logger, io.StringIO]
) -> None:
    logger, stream = json_log
    job_id = "ef" * 16
    with app.test_request_context(f"/api/v1/jobs/{job_id}/events"):
        logger.info("answering")
    (record,) = records(stream)
    assert record["job_id"] == job_id


def test_the_format_is_checked() -> None:
    assert Settings.from_env({"GANFORGE_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(ConfigError, match="GANFORGE_LOG_FORMAT"):
        Settings.from_env({"GANFORGE_LOG_FORMAT": "xml"})
