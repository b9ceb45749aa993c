"""A job followed live over Server-Sent Events (GET .../events and .../logs with
`Accept: text/event-stream`), its log read whole, and the CLI's `logs`, `watch` and
`download` on top, against the in-process app on SQLite and a local folder.

The stream polls between looks; the tests stand in for that sleep with a script that moves
the job on one step per look, as the scheduler and the worker would."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from api.app import create_app
from api.live import FEED_WAIT_CONFIG, ClientGoneError
from api.stream_slots import RETRY_AFTER_S
from cli import main
from shared.config import Settings
from shared.db import session_scope
from shared.jobs.reports import report_progress
from shared.storage import open_storage
from shared.storage.keys import LOG_NAME, artifact_key
from tests.helpers import auth
from tests.unit.job_factories import S, move, queued_job
from worker.artifacts import put_artifact

STREAM = {"Accept": "text/event-stream"}


def parse_stream(body: str) -> list[dict[str, Any]]:
    """The messages of an event stream: [{id, event, data}], comments and retry left out."""
    messages = []
    for block in body.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            fields["data"] = json.loads(fields["data"])
            messages.append(fields)
    return messages


class JobScript:
    """Moves one job on, one step per call: the stand-in for the stream's sleep."""

    def __init__(self, settings: Settings, job_id: str) -> None:
        self.settings, self.job_id = settings, job_id
        self.store = open_storage(settings)
        self.log_lines: list[str] = []
        self.steps: list[Callable[[], None]] = [
            lambda: move(settings, job_id, S.QUEUED, S.SCHEDULED, S.RUNNING),
            lambda: self.progress(10),
            lambda: self.log("loaded ring8", "step 10: G 0.7"),
            lambda: self.artifact("samples/step-000020.png", b"\x89PNG fake"),
            lambda: self.progress(20),
            lambda: (self.log("step 20: G 0.6"), move(settings, job_id, S.RUNNING, S.SUCCEEDED)),
        ]

    def __call__(self, _seconds: float) -> None:
        if self.steps:
            self.steps.pop(0)()

    def progress(self, step: int) -> None:
        with session_scope(self.settings.database_url) as session:
            report_progress(
                session,
                self.job_id,
                1,
                {"step": step, "total_steps": 20, "fraction": step / 20, "images_per_second": 99},
                {"Loss/G/loss": 0.7},
            )

    def log(self, *lines: str) -> None:
        self.log_lines += lines
        text = "".join(f"{line}\n" for line in self.log_lines).encode()
        self.artifact(LOG_NAME, text, kind="log")

    def artifact(self, name: str, data: bytes, kind: str = "samples") -> None:
        put_artifact(self.settings.database_url, self.store, self.job_id, name, kind, data)


@pytest.fixture
def scripted(app: Flask, settings: Settings, alice: str) -> JobScript:
    script = JobScript(settings, queued_job(settings, "alice"))
    app.config[FEED_WAIT_CONFIG] = script
    return script


def test_the_event_stream_tells_state_progress_log_and_artifacts_in_order_then_ends(
    client: FlaskClient, alice: str, scripted: JobScript
) -> None:
    response = client.get(
        f"/api/v1/jobs/{scripted.job_id}/events", headers={**auth(alice), **STREAM}
    )
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    body = response.get_data(as_text=True)
    assert body.startswith("retry: ")
    messages = parse_stream(body)
    told = [(m["event"], _summary(m["data"])) for m in messages]
    assert told == [
        ("state", "queued"),
        ("state", "scheduled"),
        ("state", "running"),
        ("progress", 10),
        ("log", ["loaded ring8", "step 10: G 0.7"]),
        ("artifact", "samples/step-000020.png"),
        ("progress", 20),
        ("state", "succeeded"),
        ("log", ["step 20: G 0.6"]),
        ("end", "succeeded"),
    ]
    ids = [tuple(int(part) for part in m["id"].split(".")) for m in messages]
    assert ids == sorted(ids), "each message's position is at or after the previous one"


def test_a_stream_resumed_from_last_event_id_misses_nothing_and_repeats_nothing(
    client: FlaskClient, alice: str, scripted: JobScript
) -> None:
    first = parse_stream(
        client.get(
            f"/api/v1/jobs/{scripted.job_id}/events", headers={**auth(alice), **STREAM}
        ).get_data(as_text=True)
    )
    after_log = next(m for m in first if m["event"] == "log")["id"]
    again = client.get(
        f"/api/v1/jobs/{scripted.job_id}/events",
        headers={**auth(alice), **STREAM, "Last-Event-ID": after_log},
    )
    told = [(m["event"], _summary(m["data"])) for m in parse_stream(again.get_data(as_text=True))]
    assert told == [
        ("state", "succeeded"),
        ("progress", 20),  # the progress as it stands: sent once on every connection
        ("log", ["step 20: G 0.6"]),
        ("artifact", "samples/step-000020.png"),
        ("end", "succeeded"),
    ]
    same = client.get(
        f"/api/v1/jobs/{scripted.job_id}/events?after={after_log}",
        headers={**auth(alice), **STREAM},
    )
    assert parse_stream(same.get_data(as_text=True)) == parse_stream(again.get_data(as_text=True))


def test_the_log_stream_starts_at_the_first_line_and_ends_with_the_job(
    client: FlaskClient, alice: str, scripted: JobScript
) -> None:
    response = client.get(f"/api/v1/jobs/{scripted.job_id}/logs", headers={**auth(alice), **STREAM})
    messages = parse_stream(response.get_data(as_text=True))
    assert [m["event"] for m in messages] == ["log", "log", "end"]
    lines = [line for m in messages if m["event"] == "log" for line in m["data"]["lines"]]
    assert lines == ["loaded ring8", "step 10: G 0.7", "step 20: G 0.6"]


def test_the_log_so_far_as_json_as_text_and_from_an_offset(
    client: FlaskClient, alice: str, scripted: JobScript
) -> None:
    url = f"/api/v1/jobs/{scripted.job_id}/logs"
    assert client.get(url, headers=auth(alice)).get_json() == {"lines": [], "next_offset": 0}
    scripted.log("one", "two")
    whole = client.get(url, headers=auth(alice)).get_json()
    assert whole == {"lines": ["one", "two"], "next_offset": 8}
    scripted.log("three")
    assert client.get(f"{url}?offset=8", headers=auth(alice)).get_json()["lines"] == ["three"]
    text = client.get(url, headers={**auth(alice), "Accept": "text/plain"})
    assert text.mimetype == "text/plain" and text.get_data(as_text=True) == "one\ntwo\nthree\n"
    assert text.headers["X-Next-Offset"] == "14"
    assert client.get(f"{url}?offset=x", headers=auth(alice)).status_code == 400


def test_plain_clients_get_json_and_others_jobs_are_not_found(
    client: FlaskClient, alice: str, bob: str, scripted: JobScript
) -> None:
    events = client.get(
        f"/api/v1/jobs/{scripted.job_id}/events", headers={**auth(alice), "Accept": "*/*"}
    )
    assert events.mimetype == "application/json"
    assert [e["to"] for e in events.get_json()["events"]] == ["queued"]
    for path in ("events", "logs"):
        refused = client.get(
            f"/api/v1/jobs/{scripted.job_id}/{path}", headers={**auth(bob), **STREAM}
        )
        assert refused.status_code == 404 and refused.mimetype == "application/problem+json"
    bad = client.get(
        f"/api/v1/jobs/{scripted.job_id}/events?after=1.x", headers={**auth(alice), **STREAM}
    )
    assert bad.status_code == 400


def test_streams_past_the_process_bound_are_refused_and_a_closed_one_frees_its_slot(
    settings: Settings, alice: str, bob: str
) -> None:
    app = create_app(settings.with_(streams_per_process=1))
    app.config[FEED_WAIT_CONFIG] = lambda _seconds: None  # the job stays queued: streams stay
    client = app.test_client()
    job_id = queued_job(settings, "alice")
    url = f"/api/v1/jobs/{job_id}/events"
    first = client.get(url, headers={**auth(alice), **STREAM}, buffered=False)
    assert first.status_code == 200
    refused = client.get(url, headers={**auth(alice), **STREAM})
    assert refused.status_code == 429 and refused.mimetype == "application/problem+json"
    assert refused.headers["Retry-After"] == str(RETRY_AFTER_S)
    problem = refused.get_json()
    assert problem["limit"] == {"setting": "GANFORGE_STREAMS_PER_PROCESS", "value": 1}
    assert "GANFORGE_STREAMS_PER_PROCESS" in problem["errors"][0]["message"]
    assert problem["errors"][0]["path"] == "Accept"
    # Everything else still answers, for every user, JSON of the same route included.
    assert client.get(url, headers=auth(alice)).status_code == 200
    assert client.get("/api/v1/jobs", headers=auth(bob)).status_code == 200
    first.close()  # the client went before the server read the stream: the slot comes back
    second = client.get(url, headers={**auth(bob), **STREAM}, buffered=False)
    assert second.status_code == 404  # not bob's job: refused before it takes a slot
    third = client.get(url, headers={**auth(alice), **STREAM}, buffered=False)
    assert third.status_code == 200
    assert next(third.response).startswith(b"retry: ")  # it streams; then its client goes
    third.close()
    # A HEAD is answered without its body ever being read: closing it frees the slot too.
    head = client.head(url, headers={**auth(alice), **STREAM})
    assert head.status_code == 200
    head.close()
    last = client.get(url, headers={**auth(alice), **STREAM}, buffered=False)
    assert last.status_code == 200
    last.close()


# --- the CLI ---------------------------------------------------------------------------------


def cli(tmp_path: Path, url: str, token: str, *args: str) -> Any:
    env = {"GANFORGE_HOME": str(tmp_path / "cli"), "GANFORGE_API_URL": None, "GANFORGE_TOKEN": None}
    return CliRunner().invoke(main, ["--url", url, "--token", token, *args], env=env)


def test_logs_follow_prints_every_line_until_the_job_ends(
    api_url: str, alice: str, scripted: JobScript, tmp_path: Path
) -> None:
    result = cli(tmp_path, api_url, alice, "logs", scripted.job_id, "-f")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["loaded ring8", "step 10: G 0.7", "step 20: G 0.6"]
    assert f"job {scripted.job_id} ended succeeded" in result.stderr
    printed = cli(tmp_path, api_url, alice, "logs", scripted.job_id)
    assert (
        printed.exit_code == 0
        and printed.stdout == "loaded ring8\nstep 10: G 0.7\nstep 20: G 0.6\n"
    )


def test_watch_follows_the_stream_to_the_end(
    api_url: str, alice: str, scripted: JobScript, tmp_path: Path
) -> None:
    result = cli(tmp_path, api_url, alice, "watch", scripted.job_id)
    assert result.exit_code == 0, result.output
    assert f"job {scripted.job_id} succeeded" in result.stdout
    assert scripted.steps == [], "the stream, not polling, saw the job through every step"


def test_watch_falls_back_to_polling_when_the_service_does_not_stream(
    api_url: str, app: Flask, alice: str, scripted: JobScript, tmp_path: Path, monkeypatch
) -> None:
    def without_streams() -> bool:  # an API from before streams; the job ends meanwhile
        move(scripted.settings, scripted.job_id, S.QUEUED, S.CANCELLED)
        return False

    monkeypatch.setattr("api.live.wants_stream", without_streams)
    result = cli(tmp_path, api_url, alice, "watch", scripted.job_id)
    assert result.exit_code == 6 and "ended cancelled" in result.stderr


def test_logs_follow_polls_on_from_where_the_stream_stopped_when_streams_are_refused(
    api_url: str, app: Flask, alice: str, scripted: JobScript, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr("cli.client.RECONNECT_S", 0.0)
    scripted.log("one", "two")

    def streams_fill_up(_seconds: float) -> None:
        # While the stream runs, the job logs a line and ends, the process's stream slots
        # fill up, and the stream breaks off (as when its client's connection drops).
        scripted.log("three")
        move(scripted.settings, scripted.job_id, S.QUEUED, S.CANCELLED)
        app.extensions["ganforge.stream_slots"].limit = 0
        raise ClientGoneError

    app.config[FEED_WAIT_CONFIG] = streams_fill_up
    result = cli(tmp_path, api_url, alice, "logs", scripted.job_id, "-f")
    assert result.exit_code == 0, result.output
    # The reconnect is refused (429): polling goes on after the lines the stream printed.
    assert result.stdout.splitlines() == ["one", "two", "three"]
    assert f"job {scripted.job_id} ended cancelled" in result.stderr


def test_download_checks_each_artifact_against_its_sha256(
    api_url: str, alice: str, scripted: JobScript, tmp_path: Path
) -> None:
    scripted.artifact("samples/step-000020.png", b"\x89PNG grid")
    scripted.log("a line")
    out = tmp_path / "out"
    result = cli(tmp_path, api_url, alice, "download", scripted.job_id, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert (out / "samples" / "step-000020.png").read_bytes() == b"\x89PNG grid"
    assert (out / "log.txt").read_text() == "a line\n"
    single = cli(
        tmp_path,
        api_url,
        alice,
        "download",
        scripted.job_id,
        "log.txt",
        "-o",
        str(tmp_path / "my.txt"),
    )
    assert single.exit_code == 0 and (tmp_path / "my.txt").read_text() == "a line\n"
    # The stored bytes change behind the artifact list's back: the download is refused.
    store_file = Path(scripted.settings.storage_url.removeprefix("file://"))
    (store_file / artifact_key(scripted.job_id, LOG_NAME)).write_text("tampered\n")
    corrupt = cli(tmp_path, api_url, alice, "download", scripted.job_id, "log.txt", "-o", str(out))
    assert corrupt.exit_code == 1 and "SHA-256" in corrupt.stderr
    assert (out / "log.txt").read_text() == "a line\n", "the earlier, good copy is kept"
    assert not list(out.glob("*.part"))
    missing = cli(tmp_path, api_url, alice, "download", scripted.job_id, "nope.png")
    assert missing.exit_code == 4


def _summary(data: dict[str, Any]) -> Any:
    """The one field of a message a test compares."""
    if "to" in data:
        return data["to"]
    if "progress" in data:
        return data["progress"]["step"]
    if "lines" in data:
        return data["lines"]
    if "name" in data:
        return data["name"]
    return data["state"]
