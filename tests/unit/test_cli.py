"""The `ganforge` CLI against the real API, served in-process on SQLite and a local folder: exit
statuses, --json and -q, whole ids, rerun, events, and where the CLI connects."""

from __future__ import annotations

import json
import re
import socket
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask.testing import FlaskClient

from cli import main
from cli.group import HELP_SECTIONS, ExitCode
from shared.config import Settings
from shared.db import session_scope
from shared.jobs.event_pages import DEFAULT_EVENTS_PAGE_SIZE
from shared.jobs.reports import add_warning, end_warning
from shared.storage import open_storage
from tests.helpers import RING_SPEC, auth, train_request
from tests.unit.job_factories import requeued
from worker.artifacts import put_artifact

JOB_ID = re.compile(r"\b[0-9a-f]{32}\b")


@pytest.fixture
def cli_home(tmp_path: Path) -> Path:
    """The CLI's own GANFORGE_HOME: no config file and no embedded token unless a test adds
    them."""
    home = tmp_path / "cli-home"
    home.mkdir()
    return home


def run(home: Path, *args: str, env: dict[str, str | None] | None = None) -> Result:
    """`ganforge ARGS` with nothing from the developer's own environment."""
    clean: dict[str, str | None] = {
        "GANFORGE_HOME": str(home),
        "GANFORGE_API_URL": None,
        "GANFORGE_TOKEN": None,
        "COLUMNS": "80",
    }
    return CliRunner().invoke(main, list(args), env={**clean, **(env or {})})


def as_user(home: Path, url: str, token: str, *args: str) -> Result:
    return run(home, "--url", url, "--token", token, *args)


def submit(client: FlaskClient, token: str, name: str = "ring") -> str:
    response = client.post("/api/v1/jobs", json=train_request(name), headers=auth(token))
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["id"])


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- reading ---------------------------------------------------------------------------------


def test_jobs_shows_short_ids_that_every_command_accepts(
    api_url: str, client: FlaskClient, alice: str, bob: str, cli_home: Path
) -> None:
    ids = [submit(client, alice, name=f"a rather long job name number {i}") for i in range(2)]
    result = as_user(cli_home, api_url, alice, "jobs")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["id", "kind"]
    assert [line.split()[0] for line in lines[1:]] == [job_id[:8] for job_id in ids[::-1]]
    shown = as_user(cli_home, api_url, alice, "show", ids[0][:8], "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["id"] == ids[0]
    cancelled = as_user(cli_home, api_url, alice, "cancel", ids[1][:12].upper())
    assert cancelled.exit_code == 0, cancelled.output
    state = client.get(f"/api/v1/jobs/{ids[1]}", headers=auth(alice)).get_json()["state"]
    assert state == "cancelled"
    # Another user's job is not found by its prefix; a prefix too short is a usage error.
    assert as_user(cli_home, api_url, bob, "show", ids[0][:8]).exit_code == ExitCode.NOT_FOUND
    short = as_user(cli_home, api_url, alice, "show", ids[0][:7])
    assert short.exit_code == ExitCode.USAGE and "8 or more characters" in short.stderr
    listed = client.get(f"/api/v1/jobs?id_prefix={ids[0][:8]}", headers=auth(alice)).get_json()
    assert [job["id"] for job in listed["jobs"]] == [ids[0]]
    bad = client.get("/api/v1/jobs?id_prefix=xyz", headers=auth(alice))
    assert bad.status_code == 400 and bad.get_json()["errors"][0]["path"] == "id_prefix"


def test_a_prefix_of_several_jobs_names_them(
    api_url: str, client: FlaskClient, alice: str, cli_home: Path, settings: Settings
) -> None:
    from shared.models import Job, User

    twin = "abcdef12" + "f" * 24
    with session_scope(settings.database_url) as session:  # ids share no prefix by chance
        owner_id = session.query(User).filter_by(name="alice").one().id
        for job_id in ("abcdef12" + "0" * 24, twin):
            session.add(
                Job(
                    id=job_id,
                    owner_id=owner_id,
                    kind="train",
                    name="twin",
                    spec=RING_SPEC,
                    state="queued",
                    max_attempts=3,
                    devices=1,
                )
            )
    result = as_user(cli_home, api_url, alice, "show", "abcdef12")
    assert result.exit_code == ExitCode.ERROR
    assert "several jobs" in result.stderr and twin in result.stderr


def test_show_is_a_page_a_person_reads(
    api_url: str, client: FlaskClient, alice: str, cli_home: Path
) -> None:
    job_id = submit(client, alice)
    result = as_user(cli_home, api_url, alice, "show", job_id)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert re.search(rf"^job +{job_id}  train 'ring' of alice$", text, re.M)
    assert "queued (attempt 0 of 3)" in text or "queued (attempt 1 of 3)" in text
    assert "spec model" in text and "family mlp, width 32" in text
    assert "steps 40, batch_size 64" in text
    assert "{" not in text.split("queued")[0], "no JSON before the events"
    assert "to" in text and "queued" in text  # the events table
    assert len(text.splitlines()) < 30


def test_quiet_listings_print_ids_only_one_a_line(
    api_url: str, client: FlaskClient, alice: str, cli_home: Path
) -> None:
    ids = [submit(client, alice) for _ in range(3)]
    result = as_user(cli_home, api_url, alice, "jobs", "-q")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ids[::-1], "newest first, nothing else"
    datasets = as_user(cli_home, api_url, alice, "datasets", "list", "--quiet")
    assert datasets.exit_code == 0 and datasets.stdout == ""


def test_json_prints_the_api_document(
    api_url: str, client: FlaskClient, alice: str, cli_home: Path
) -> None:
    job_id = submit(client, alice)
    listed = json.loads(as_user(cli_home, api_url, alice, "jobs", "--json").stdout)
    assert listed == client.get("/api/v1/jobs?limit=20", headers=auth(alice)).get_json()
    shown = json.loads(as_user(cli_home, api_url, alice, "show", job_id, "--json").stdout)
    assert shown == client.get(f"/api/v1/jobs/{job_id}", headers=auth(alice)).get_json()
    events = json.loads(as_user(cli_home, api_url, alice, "events", job_id, "--json").stdout)
    assert [event["to"] for event in events["events"]] == ["queued"]
    found = json.loads(as_user(cli_home, api_url, alice, "artifacts", job_id, "--json").stdout)
    assert found == {"artifacts": []}
    for command in (["pool"], ["queue"], ["datasets", "list"], ["token", "list"]):
        result = as_user(cli_home, api_url, alice, *command, "--json")
        assert result.exit_code == 0, (command, result.output)
        assert isinstance(json.loads(result.stdout), dict), command
    queued = json.loads(as_user(cli_home, api_url, alice, "queue", "--json").stdout)
    assert [job["id"] for job in queued["queue"]] == [job_id]


def test_events_prints_each_state_change(
    api_url: str, client: FlaskClient, alice: str, cli_home: Path
) -> None:
    job_id = submit(client, alice)
    assert as_user(cli_home, api_url, alice, "cancel", job_id).exit_code == 0
    result = as_user(cli_home, api_url, alice, "events", job_id)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["at", "from", "to", "attempt", "reason"]
    assert [line.split()[2:4] for line in lines[1:]] == [["-", "queued"], ["queued", "cancelled"]]


def test_cli_events_of_a_long_job_reads_every_page(
    api_url: str, settings: Settings, alice: str, cli_home: Path
) -> None:
    times = DEFAULT_EVENTS_PAGE_SIZE // 2 + 1  # past one default page
    job_id = requeued(settings, times)
    result = as_user(cli_home, api_url, alice, "events", job_id)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1 + 1 + 2 * times  # header, then each event


# --- exit statuses ---------------------------------------------------------------------------


def test_exit_statuses_say_what_went_wrong(
    api_url: str, client: FlaskClient, alice: str, bob: str, cli_home: Path, tmp_path: Path
) -> None:
    job_id = submit(client, alice)
    no_token = run(cli_home, "--url", api_url, "jobs")
    assert no_token.exit_code == ExitCode.AUTH == 3
    assert no_token.stderr.startswith("ganforge: ") and "401" in no_token.stderr
    assert as_user(cli_home, api_url, "gf_not-a-token", "jobs").exit_code == ExitCode.AUTH
    assert as_user(cli_home, api_url, bob, "show", job_id).exit_code == ExitCode.NOT_FOUND == 4
    assert as_user(cli_home, api_url, alice, "show", "0" * 32).exit_code == ExitCode.NOT_FOUND
    assert as_user(cli_home, api_url, alice, "show").exit_code == ExitCode.USAGE == 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**RING_SPEC, "train": {"steps": -1}}))
    refused = as_user(cli_home, api_url, alice, "submit", str(bad))
    assert refused.exit_code == ExitCode.ERROR == 1
    assert refused.stderr.count("spec.train.steps") == 1, "each error once"
    assert refused.stderr.startswith("ganforge: Invalid job request (HTTP 422)\n")
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({**RING_SPEC, "data": {"source": "toy:ring9"}}))
    refused = as_user(cli_home, api_url, alice, "submit", str(typo))
    assert refused.stderr.count("spec.data.source") == 1 and "literal[" not in refused.stderr
    assert "did you mean `toy:ring8`?" in refused.stderr
    accepted = as_user(cli_home, api_url, alice, "submit", str(tmp_path / "ok.json"), "-q")
    assert accepted.exit_code == ExitCode.USAGE  # no such file
    (tmp_path / "ok.json").write_text(json.dumps(RING_SPEC))
    accepted = as_user(cli_home, api_url, alice, "submit", str(tmp_path / "ok.json"), "-q")
    assert accepted.exit_code == 0 and JOB_ID.fullmatch(accepted.stdout.strip()), accepted.output


def test_an_unreachable_service_is_one_line_and_status_5(cli_home: Path) -> None:
    url = closed_port_url()
    for command in (["jobs"], ["show", "0" * 32], ["events", "0" * 32], ["pool", "--json"]):
        result = run(cli_home, "--url", url, *command)
        assert result.exit_code == ExitCode.UNREACHABLE == 5, result.output
        assert result.stdout == ""
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"ganforge: cannot reach the service at {url}: ")
        assert "refused" in line.lower()


def test_watch_exits_6_when_the_job_is_cancelled(
    api_url: str, client: FlaskClient, alice: str, cli_home: Path
) -> None:
    job_id = submit(client, alice)
    assert client.post(f"/api/v1/jobs/{job_id}/cancel", headers=auth(alice)).status_code == 202
    result = as_user(cli_home, api_url, alice, "watch", job_id)
    assert result.exit_code == ExitCode.JOB_FAILED == 6
    assert f"ganforge: job {job_id} ended cancelled" in result.stderr


def test_submit_watch_exits_6_when_the_job_ends_cancelled(
    api_url: str, client: FlaskClient, alice: str, cli_home: Path, tmp_path: Path
) -> None:
    spec = tmp_path / "ring.json"
    spec.write_text(json.dumps(RING_SPEC))

    def cancel_once_submitted() -> None:
        # No worker runs here: the job would wait forever. Cancel it as soon as it exists.
        for _ in range(200):
            jobs = client.get("/api/v1/jobs", headers=auth(alice)).get_json()["jobs"]
            if jobs:
                client.post(f"/api/v1/jobs/{jobs[0]['id']}/cancel", headers=auth(alice))
                return
            threading.Event().wait(0.05)

    canceller = threading.Thread(target=cancel_once_submitted)
    canceller.start()
    result = as_user(cli_home, api_url, alice, "submit", str(spec), "--watch")
    canceller.join()
    assert result.exit_code == ExitCode.JOB_FAILED, result.output
    assert "ended cancelled" in result.stderr


# --- rerun -----------------------------------------------------------------------------------


def test_rerun_submits_a_copy_with_the_fields_set(
    api_url: str, client: FlaskClient, alice: str, cli_home: Path
) -> None:
    old_id = submit(client, alice, name="seed sweep")
    args = ["--set", "train.seed=3", "--set", "loss=hinge", "--set", "train.betas=[0.0, 0.9]"]
    result = as_user(cli_home, api_url, alice, "rerun", old_id, *args)
    assert result.exit_code == 0, result.output
    (new_id,) = result.stdout.split()
    assert JOB_ID.fullmatch(new_id) and new_id != old_id
    old = client.get(f"/api/v1/jobs/{old_id}", headers=auth(alice)).get_json()
    new = client.get(f"/api/v1/jobs/{new_id}", headers=auth(alice)).get_json()
    assert (new["kind"], new["name"]) == (old["kind"], old["name"])
    assert new["spec"]["train"]["seed"] == 3 and new["spec"]["train"]["betas"] == [0.0, 0.9]
    assert new["spec"]["loss"] == "hinge" or new["spec"]["loss"]["name"] == "hinge"
    unchanged = {k: v for k, v in old["spec"].items() if k not in ("train", "loss")}
    assert {k: new["spec"][k] for k in unchanged} == unchanged
    assert {**old["spec"]["train"], "seed": 3, "betas": [0.0, 0.9]} == new["spec"]["train"]


def test_rerun_with_fewer_steps_scales_the_cadences_and_says_so(
    api_url: str, client: FlaskClient, alice: str, cli_home: Path
) -> None:
    old_id = submit(client, alice)  # 40 steps, checkpoints and samples every 20
    result = as_user(cli_home, api_url, alice, "rerun", old_id, "--set", "train.steps=10")
    assert result.exit_code == 0, result.output
    new_id = result.stdout.strip()
    new = client.get(f"/api/v1/jobs/{new_id}", headers=auth(alice)).get_json()["spec"]
    assert (new["train"]["steps"], new["checkpoint_every"], new["sample_every"]) == (10, 5, 5)
    assert "train.steps 40 -> 10, so checkpoint_every 20 -> 5, sample_every 20 -> 5" in (
        result.stderr
    )
    chosen = as_user(cli_home, api_url, alice, "rerun", old_id, "--set", "train.steps=10",
                     "--set", "sample_every=10")  # fmt: skip
    assert chosen.exit_code == 0, chosen.output
    spec = client.get(f"/api/v1/jobs/{chosen.stdout.strip()}", headers=auth(alice)).get_json()
    assert (spec["spec"]["checkpoint_every"], spec["spec"]["sample_every"]) == (5, 10)


def test_rerun_refuses_a_malformed_change(
    api_url: str, client: FlaskClient, alice: str, cli_home: Path
) -> None:
    job_id = submit(client, alice)
    for change in ("train.seed", "=3", "train..seed=3", "train.seed.x=1"):
        result = as_user(cli_home, api_url, alice, "rerun", job_id, "--set", change)
        assert result.exit_code == ExitCode.USAGE, (change, result.output)
        assert "--set" in result.stderr
    assert len(client.get("/api/v1/jobs", headers=auth(alice)).get_json()["jobs"]) == 1


# --- where the CLI connects ------------------------------------------------------------------


def test_flags_win_over_the_environment_which_wins_over_the_config_file(
    api_url: str, alice: str, cli_home: Path
) -> None:
    closed = closed_port_url()
    (cli_home / "config.toml").write_text(f'url = "{api_url}"\ntoken = "{alice}"\n')
    assert run(cli_home, "jobs").exit_code == 0, "the config file alone is enough"
    env_url = run(cli_home, "jobs", env={"GANFORGE_API_URL": closed})
    assert env_url.exit_code == ExitCode.UNREACHABLE, "the environment beats the file"
    env_token = run(cli_home, "jobs", env={"GANFORGE_TOKEN": "gf_wrong"})
    assert env_token.exit_code == ExitCode.AUTH
    flags = run(
        cli_home,
        *("--url", api_url, "--token", alice, "jobs"),
        env={"GANFORGE_API_URL": closed, "GANFORGE_TOKEN": "gf_wrong"},
    )
    assert flags.exit_code == 0, "flags beat the environment"


def test_a_broken_config_file_is_named(cli_home: Path) -> None:
    (cli_home / "config.toml").write_text('url = "http://x"\ntokn = "gf_x"\n')
    result = run(cli_home, "jobs")
    assert result.exit_code == ExitCode.ERROR
    assert "config.toml" in result.stderr and "tokn" in result.stderr
    (cli_home / "config.toml").write_text("url = \n")
    assert "not a readable TOML file" in run(cli_home, "jobs").stderr


# --- help ------------------------------------------------------------------------------------


def test_help_lists_one_command_a_line_under_topics(cli_home: Path) -> None:
    result = run(cli_home, "--help")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    for title, names in HELP_SECTIONS.items():
        assert f"{title}:" in lines
        for name in names:
            (line,) = [line for line in lines if line.split()[:1] == [name]]
            assert len(line.split()) > 2, f"{name} has a description on its own line"
            assert not line.endswith("..."), f"{name}'s description is cut: {line!r}"
    assert any(line.startswith("Exit status: 0 ok") for line in (s.strip() for s in lines))


# --- quality ---------------------------------------------------------------------------------


def test_quality_shows_the_evaluations_over_steps_and_json_gives_the_series(
    api_url: str, client: FlaskClient, alice: str, cli_home: Path, settings: Settings
) -> None:
    job_id = submit(client, alice)
    lines = [
        {"step": 10, "time": 0, "Loss/D/loss": 1.0},
        {"step": 10, "time": 0, "eval": {"modes_covered": 5, "high_quality": 0.5, "w1": None}},
        {"step": 20, "time": 0, "eval": {"modes_covered": 8, "high_quality": 0.925}},
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    put_artifact(
        settings.database_url, open_storage(settings), job_id, "metrics.jsonl", "metrics", data
    )
    shown = as_user(cli_home, api_url, alice, "quality", job_id)
    assert shown.exit_code == 0, shown.output
    rows = [line.split() for line in shown.output.splitlines()]
    assert rows[0] == ["step", "modes", "high", "quality", "W1"]
    assert rows[1] == ["10", "5", "50.0%", "n/a"] and rows[2] == ["20", "8", "92.5%"]
    as_json = as_user(cli_home, api_url, alice, "quality", job_id, "--json", "--from-step", "15")
    assert [entry["step"] for entry in json.loads(as_json.output)["metrics"]] == [20]
    missing = as_user(cli_home, api_url, alice, "quality", "0" * 32)
    assert missing.exit_code == ExitCode.NOT_FOUND


def test_tensorboard_fetches_each_jobs_events_into_a_run_folder_of_its_own(
    api_url: str, client: FlaskClient, alice: str, cli_home: Path, settings: Settings,
    tmp_path: Path,
) -> None:  # fmt: skip
    ids = [submit(client, alice, name=name) for name in ("hinge run", "lsgan/run")]
    for number, job_id in enumerate(ids, 1):
        put_artifact(settings.database_url, open_storage(settings), job_id,
                     f"tensorboard/events.out.tfevents.attempt-{number}", "log",
                     f"events {number}".encode())  # fmt: skip
    logdir = tmp_path / "runs"
    args = ("tensorboard", ids[0][:8], ids[1], "--logdir", str(logdir), "--no-start")
    result = as_user(cli_home, api_url, alice, *args)
    assert result.exit_code == 0, result.output
    first = logdir / f"{ids[0][:8]}-hinge-run" / "events.out.tfevents.attempt-1"
    second = logdir / f"{ids[1][:8]}-lsgan-run" / "events.out.tfevents.attempt-2"
    assert first.read_bytes() == b"events 1" and second.read_bytes() == b"events 2"
    assert f"tensorboard --logdir {logdir}" in result.stdout
    bare = submit(client, alice)
    none = as_user(cli_home, api_url, alice, "tensorboard", bare, "--logdir", str(logdir))
    assert none.exit_code == ExitCode.NOT_FOUND and "no event files" in none.stderr


def test_quality_shows_an_uploads_point_figures_with_their_intervals_and_counts(
    api_url: str, client: FlaskClient, alice: str, cli_home: Path, settings: Settings
) -> None:
    job_id = submit(client, alice)
    figures = {"points_held_out": 600, "points_samples": 3000, "points_draws": 5}
    for name, value in (("precision", 0.98), ("recall", 0.66), ("density", 1.01)):
        figures |= {
            f"points_{name}": value,
            f"points_{name}_interval": [value - 0.01, value + 0.01],
        }
    figures |= {"points_coverage": 0.6667, "points_coverage_interval": [0.65, 0.6834]}
    figures |= {"spread": 2.5}
    data = (json.dumps({"step": 500, "time": 0, "eval": figures}) + "\n").encode()
    put_artifact(
        settings.database_url, open_storage(settings), job_id, "metrics.jsonl", "metrics", data
    )
    shown = as_user(cli_home, api_url, alice, "quality", job_id)
    assert shown.exit_code == 0, shown.output
    header, row = (line.split() for line in shown.output.splitlines()[:2])
    assert header == [
        "step", "precision", "recall", "density", "coverage", "held", "out", "generated", "spread"
    ]  # fmt: skip
    assert " ".join(row) == (
        "500 0.98 [0.97, 0.99] 0.66 [0.65, 0.67] 1.01 [1, 1.02] 0.6667 [0.65, 0.6834] 600 3,000 2.5"
    )


def test_quality_shows_each_figure_with_its_interval_and_when_each_warning_held(
    api_url: str, client: FlaskClient, alice: str, cli_home: Path, settings: Settings
) -> None:
    job_id = submit(client, alice)
    figures = {
        "samples": 2500, "high_quality_samples": 2440,
        "modes_covered": 8, "modes_covered_interval": [8, 8],
        "high_quality": 0.976, "high_quality_interval": [0.97, 0.982],
        "kl_from_uniform": 0.0031, "kl_from_uniform_interval": [0.0, 0.0052],
    }  # fmt: skip
    line = json.dumps({"step": 30000, "time": 0, "eval": figures}) + "\n"
    put_artifact(
        settings.database_url, open_storage(settings), job_id, "metrics.jsonl", "metrics",
        line.encode(),
    )  # fmt: skip
    with session_scope(settings.database_url) as session:
        add_warning(session, job_id, 1, 5000, "samples crowd into few modes", "modes-kl")
        end_warning(session, job_id, 1, 7500, "modes-kl")
        add_warning(session, job_id, 1, 20000, "1/8 modes covered", "modes-drop")
    shown = as_user(cli_home, api_url, alice, "quality", job_id)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[1].split() == [
        "30000", "2,500", "2,440", "8", "[8,", "8]", "97.6%", "[97.0%,", "98.2%]", "0.0031",
        "[0,", "0.0052]",
    ]  # fmt: skip
    assert "warning (steps 5,000-7,500): samples crowd into few modes" in lines
    assert "warning (from step 20,000, still holds): 1/8 modes covered" in lines
