"""Fixtures shared by all test suites."""

from __future__ import annotations

import logging
import os
import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from api.app import create_app
from shared.config import Settings
from tests.helpers import SUMMARY_SECTION, user_token
from tests.s3_server import start_moto_server
from tests.servers import ServerUnavailableError, TestServer, postgres_server, redis_server

# Dummy credentials: boto3 refuses to sign without some, and moto accepts any. Set for the whole
# session so that no test can reach a real AWS account with the developer's own keys.
_FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


# The one reason a test may skip: hardware this machine lacks. Any other skip is a missing
# prerequisite that must fail loudly, naming what to install, or CI would pass by skipping.
_HARDWARE_SKIP = re.compile(r"\b(GPU|CUDA|NCCL)\b")


# Each suite's markers come from its folder, set here at collection: a `pytestmark` in a
# conftest.py is ignored by pytest, so `-m "not e2e"` would still collect those suites.
# `processes` (tests that start processes of their own) is set by the tests themselves.
SUITE_MARKERS: dict[str, tuple[str, ...]] = {
    "unit": ("unit",),
    "integration": ("integration",),
    "e2e": ("e2e",),
    "resilience": ("e2e", "resilience"),
    "soak": ("e2e", "soak"),
}
_TESTS_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        suite = Path(item.path).resolve().relative_to(_TESTS_DIR).parts[0]
        for marker in SUITE_MARKERS.get(suite, ()):
            item.add_marker(marker)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The sections tests asked for (tests.helpers.add_summary_lines), read from their reports."""
    latest: dict[tuple[str, str], list[str]] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            for name, lines in getattr(report, "user_properties", ()):
                if isinstance(name, str) and name.startswith(SUMMARY_SECTION):
                    latest[(report.nodeid, name[len(SUMMARY_SECTION) :])] = lines
    sections: dict[str, list[str]] = {}
    for (_, title), lines in latest.items():
        sections.setdefault(title, []).extend(lines)
    for title, lines in sections.items():
        terminalreporter.section(title)
        for line in lines:
            terminalreporter.line(line)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    longrepr = report.longrepr
    reason = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)
    if not _HARDWARE_SKIP.search(reason):
        report.outcome = "failed"
        report.longrepr = f"skipped for a reason other than missing hardware (GPU): {reason}"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """URL of a moto S3 server that runs for the whole test session."""
    saved = {name: os.environ.get(name) for name in _FAKE_AWS_ENV}
    os.environ.update(_FAKE_AWS_ENV)
    endpoint_url, stop = start_moto_server()
    try:
        yield endpoint_url
    finally:
        stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def postgres() -> Iterator[TestServer]:
    """The suite's PostgreSQL server (its own throwaway cluster unless one is named); its `url`
    is a libpq URL with rights to create databases."""
    try:
        with postgres_server() as server:
            yield server
    except ServerUnavailableError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def redis_service() -> Iterator[TestServer]:
    """The suite's Redis server (its own throwaway redis-server unless one is named)."""
    try:
        with redis_server() as server:
            yield server
    except ServerUnavailableError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture
def redis_client(redis_service: TestServer) -> redis.Redis:
    return redis.Redis.from_url(redis_service.url)


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A new, empty bucket on the moto server, named uniquely so tests never share objects."""
    name = f"test-{uuid.uuid4().hex}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


# The app fixtures below run on whatever `settings` the suite's own conftest provides: the
# embedded defaults in unit/, the real PostgreSQL, Redis and S3 in integration/.


@pytest.fixture
def app(settings: Settings) -> Flask:
    return create_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def alice(settings: Settings) -> str:
    return user_token(settings, "alice")


@pytest.fixture
def bob(settings: Settings) -> str:
    return user_token(settings, "bob")


@pytest.fixture
def api_url(app: Flask) -> Iterator[str]:
    """The test app behind a real HTTP port, as the CLI sees a deployment."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)
