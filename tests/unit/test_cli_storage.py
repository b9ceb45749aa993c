"""`ganforge usage`, `delete` and `admin set-quota` against the real API over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from cli.group import ExitCode
from shared.config import Settings
from tests.helpers import auth, user_token
from tests.unit.storage_rows import finished_job
from tests.unit.test_cli import as_user


@pytest.fixture
def cli_home(tmp_path: Path) -> Path:
    home = tmp_path / "cli-home"
    home.mkdir()
    return home


def test_usage_shows_the_totals_and_the_largest_jobs(
    api_url: str, alice: str, cli_home: Path, settings: Settings
) -> None:
    job_id = finished_job(settings, "alice", 2048)

    shown = as_user(cli_home, api_url, alice, "usage")

    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[1].split() == ["alice", "2.0", "KiB", "2.0", "KiB", "0", "B", "0", "B", "none"]
    assert any(line.startswith(job_id[:8]) and "2.0 KiB" in line for line in lines)
    as_json = json.loads(as_user(cli_home, api_url, alice, "usage", "--json").output)
    assert as_json["users"][0]["artifacts_bytes"] == 2048
    every = as_user(cli_home, api_url, alice, "usage", "--all")
    assert every.exit_code == ExitCode.AUTH


def test_delete_asks_for_yes_then_deletes_by_short_id(
    api_url: str, client: FlaskClient, alice: str, cli_home: Path, settings: Settings
) -> None:
    job_id = finished_job(settings, "alice", 10)

    unconfirmed = as_user(cli_home, api_url, alice, "delete", job_id[:8])

    assert unconfirmed.exit_code == ExitCode.USAGE and "--yes" in unconfirmed.output
    assert client.get(f"/api/v1/jobs/{job_id}", headers=auth(alice)).status_code == 200
    done = as_user(cli_home, api_url, alice, "delete", job_id[:8], "--yes")
    assert done.exit_code == 0 and f"deleted job {job_id}" in done.output
    assert client.get(f"/api/v1/jobs/{job_id}", headers=auth(alice)).status_code == 404


def test_admin_set_quota_takes_sizes_with_units_and_default(
    api_url: str, alice: str, cli_home: Path, settings: Settings
) -> None:
    root = user_token(settings, "root", admin=True)

    set_ = as_user(cli_home, api_url, root, "admin", "set-quota", "alice", "2G")

    assert set_.exit_code == 0, set_.output
    assert "alice may store 2.0 GiB (2147483648 bytes)" in set_.output
    usage = json.loads(as_user(cli_home, api_url, alice, "usage", "--json").output)
    assert usage["users"][0]["quota_bytes"] == 2 * 1024**3
    back = as_user(cli_home, api_url, root, "admin", "set-quota", "alice", "default")
    assert "alice may store without limit" in back.output
    wrong = as_user(cli_home, api_url, root, "admin", "set-quota", "alice", "lots")
    assert wrong.exit_code == ExitCode.USAGE and "lots" in wrong.output
