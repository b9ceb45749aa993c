"""`ganforge tag / note / jobs --tag --search / compare` against the real API in-process:
labels round-trip, the comparison table with its sort and --json, and --plot's PNG."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from PIL import Image

from cli.group import ExitCode
from shared.config import Settings
from shared.storage import open_storage
from tests.helpers import RING_SPEC, auth
from tests.unit.test_cli import as_user
from tests.unit.test_compare import evaluated, submit
from worker.artifacts import put_artifact


@pytest.fixture
def cli_home(tmp_path: Path) -> Path:
    """The CLI's own GANFORGE_HOME (as tests/unit/test_cli.py's): nothing of the developer's."""
    home = tmp_path / "cli-home"
    home.mkdir()
    return home


def test_tag_note_and_jobs_filters_round_trip(
    api_url: str,
    client: FlaskClient,
    alice: str,
    cli_home: Path,
) -> None:
    first, second = submit(client, alice, "r1 run"), submit(client, alice, "other")
    tagged = as_user(cli_home, api_url, alice, "tag", first["id"][:8], "sweep", "r1", "sweep")
    assert tagged.exit_code == 0, tagged.output
    assert "tags: sweep, r1" in tagged.output
    as_user(cli_home, api_url, alice, "tag", second["id"], "sweep")
    removed = as_user(cli_home, api_url, alice, "tag", first["id"], "r1", "--remove")
    assert removed.exit_code == 0 and "tags: sweep" in removed.output
    noted = as_user(cli_home, api_url, alice, "note", second["id"][:8], "lr", "halved")
    assert noted.exit_code == 0, noted.output
    job = client.get(f"/api/v1/jobs/{second['id']}", headers=auth(alice)).get_json()
    assert job["note"] == "lr halved" and job["tags"] == ["sweep"]
    listed = as_user(cli_home, api_url, alice, "jobs", "--tag", "sweep", "--search", "HALVED", "-q")
    assert listed.stdout.split() == [second["id"]]
    both = as_user(cli_home, api_url, alice, "jobs", "--tag", "sweep", "-q")
    assert both.stdout.split() == [second["id"], first["id"]]
    bad = as_user(cli_home, api_url, alice, "tag", first["id"], "no/slash")
    assert bad.exit_code == ExitCode.ERROR and "tags.1" in bad.stderr
    spec = cli_home / "ring.json"
    spec.write_text(json.dumps(RING_SPEC))
    new = as_user(
        cli_home,
        api_url,
        alice,
        "submit",
        str(spec),
        "--tag",
        "a",
        "--tag",
        "b",
        "--note",
        "n",
        "-q",
    )
    assert new.exit_code == 0, new.output
    job = client.get(f"/api/v1/jobs/{new.stdout.strip()}", headers=auth(alice)).get_json()
    assert (job["tags"], job["note"]) == (["a", "b"], "n")


def _three_runs(client: FlaskClient, token: str, settings: Settings) -> list[str]:
    """Three runs tagged `q` differing in train.seed, evaluated to different figures."""
    ids = []
    for seed, high, kl in ((1, 0.80, 0.02), (2, 0.95, 0.10), (3, 0.90, 0.01)):
        job = submit(client, token, f"seed {seed}", tags=["q"], train={"seed": seed})
        evaluated(settings, job["id"], {
            "step": 40, "samples": 10000, "high_quality": high,
            "high_quality_interval": [high - 0.01, high + 0.01], "kl_from_uniform": kl,
        })  # fmt: skip
        ids.append(job["id"])
    return ids


def test_compare_prints_what_differs_and_sorts_by_a_figure(
    api_url: str,
    client: FlaskClient,
    alice: str,
    cli_home: Path,
    settings: Settings,
) -> None:
    ids = _three_runs(client, alice, settings)
    shown = as_user(cli_home, api_url, alice, "compare", "--tag", "q", "--sort", "high_quality")
    assert shown.exit_code == 0, shown.output
    header, *rows = shown.stdout.splitlines()
    assert header.split() == [
        "id", "name", "state", "tags", "train.seed", "step", "samples", "high", "quality", "KL"
    ]  # fmt: skip
    assert [row.split()[0] for row in rows] == [ids[1][:8], ids[2][:8], ids[0][:8]]
    assert rows[0].split()[5:] == ["2", "40", "10,000", "95.0%", "[94.0%,", "96.0%]", "0.1"]
    by_kl = as_user(cli_home, api_url, alice, "compare", *ids, "--sort", "KL", "--json")
    assert by_kl.exit_code == 0, by_kl.output
    table = json.loads(by_kl.stdout)
    assert [row["id"] for row in table["rows"]] == [ids[2], ids[0], ids[1]]  # lowest KL first
    assert [job["id"] for job in table["jobs"]] == [ids[2], ids[0], ids[1]]
    assert table["same"]["train.steps"] == 40
    unknown = as_user(cli_home, api_url, alice, "compare", *ids, "--sort", "FID")
    assert unknown.exit_code == ExitCode.USAGE and "high_quality" in unknown.stderr
    nothing = as_user(cli_home, api_url, alice, "compare")
    assert nothing.exit_code == ExitCode.USAGE


def test_compare_plots_a_metric_s_curves_to_a_png(
    api_url: str, client: FlaskClient, alice: str, cli_home: Path, settings: Settings,
    tmp_path: Path,
) -> None:  # fmt: skip
    ids = _three_runs(client, alice, settings)
    store = open_storage(settings)
    for scale, job_id in enumerate(ids[:2], start=1):
        lines = [{"step": s, "time": 0, "Loss/G/loss": scale / (1 + s)} for s in range(0, 50, 10)]
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        put_artifact(settings.database_url, store, job_id, "metrics.jsonl", "metrics", data)
    target = tmp_path / "curves.png"
    drawn = as_user(
        cli_home, api_url, alice, "compare", "--tag", "q", "--metric", "loss_g",
        "--plot", str(target),
    )  # fmt: skip
    assert drawn.exit_code == 0, drawn.output
    assert f"no Loss/G/loss recorded by {ids[2][:8]}" in drawn.stderr
    with Image.open(target) as picture:
        assert picture.format == "PNG" and picture.size == (800, 500)
        assert len(picture.convert("RGB").getcolors(maxcolors=1 << 16) or []) > 10
    lonely = as_user(cli_home, api_url, alice, "compare", ids[0], "--metric", "loss_g")
    assert lonely.exit_code == ExitCode.USAGE
    none = as_user(
        cli_home, api_url, alice, "compare", ids[2], "--metric", "loss_g", "--plot",
        str(tmp_path / "none.png"),
    )  # fmt: skip
    assert none.exit_code == ExitCode.ERROR and not (tmp_path / "none.png").exists()
