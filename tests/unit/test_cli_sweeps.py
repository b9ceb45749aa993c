"""Sweeps from the command line: `submit --kind sweep`, `show` with the children's states,
`jobs --parent`, and `rerun` of a sweep submitting the sweep again (new children)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from flask.testing import FlaskClient

from tests.helpers import RING_SPEC, auth
from tests.unit.test_cli import as_user
from tests.unit.test_cli import cli_home as cli_home  # the fixture


def test_a_sweep_is_submitted_shown_listed_and_rerun(
    api_url: str, client: FlaskClient, alice: str, cli_home: Path, tmp_path: Path
) -> None:
    spec_file = tmp_path / "seeds.json"
    spec_file.write_text(
        json.dumps({"base": RING_SPEC, "grid": {"train.seed": [0, 1, 2]}, "max_parallel": 1})
    )
    submitted = as_user(cli_home, api_url, alice, "submit", "--kind", "sweep", str(spec_file))
    assert submitted.exit_code == 0, submitted.output
    (sweep,) = client.get("/api/v1/jobs?kind=sweep", headers=auth(alice)).get_json()["jobs"]
    assert sweep["name"] == "seeds"

    shown = as_user(cli_home, api_url, alice, "show", sweep["id"])
    assert shown.exit_code == 0, shown.output
    assert re.search(r"^children +3: 3 queued$", shown.stdout, re.MULTILINE), shown.stdout

    listed = as_user(cli_home, api_url, alice, "jobs", "--parent", sweep["id"][:8], "-q")
    assert listed.exit_code == 0, listed.output
    children = client.get(f"/api/v1/jobs/{sweep['id']}", headers=auth(alice)).get_json()
    assert sorted(listed.stdout.split()) == sorted(children["children"]["ids"])

    rerun = as_user(cli_home, api_url, alice, "rerun", sweep["id"], "--set", "max_parallel=2")
    assert rerun.exit_code == 0, rerun.output
    again = client.get(f"/api/v1/jobs/{rerun.stdout.strip()}", headers=auth(alice)).get_json()
    assert again["kind"] == "sweep" and again["spec"]["max_parallel"] == 2
    assert again["spec"]["grid"] == sweep["spec"]["grid"]
    assert again["children"]["total"] == 3
    assert not set(again["children"]["ids"]) & set(children["children"]["ids"])
