"""A real training job followed live: the API's event stream (gunicorn's gthread workers),
the CLI's client reading it, rank 0's log uploaded while the job runs; and streams that fill
their slots while the API goes on answering everyone."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import requests

from cli.client import Client
from cli.embedded import API_WORKERS
from tests.e2e.conftest import Service, running_service
from tests.helpers import RING_SPEC, train_request, user_token, with_steps
from tests.servers import TestServer

# Long enough (several seconds on one thread) that the stream sees the run between its
# checkpoints, not only its end.
STEPS = 3000


def test_the_event_stream_shows_progress_and_log_lines_before_the_job_ends(
    service: Service,
) -> None:
    spec = {**with_steps(RING_SPEC, STEPS), "checkpoint_every": 1000, "sample_every": 1000}
    job = service.submit("train", spec, name="followed")
    token = service.http.headers["Authorization"].split(" ", 1)[1]
    client = Client(service.settings.api_url, token)
    messages = list(client.feed(job["id"], "events"))
    names = [message.name for message in messages]
    assert names[-1] == "end" and messages[-1].data["state"] == "succeeded", messages[-1]
    states = [m.data["to"] for m in messages if m.name == "state"]
    assert states == ["queued", "scheduled", "running", "succeeded"]
    finished = next(
        i for i, m in enumerate(messages) if m.name == "state" and m.data["to"] == "succeeded"
    )
    mid_run = [
        m
        for m in messages[:finished]
        if m.name == "progress" and m.data["progress"]["step"] < STEPS
    ]
    assert mid_run, f"no progress seen while the job ran: {names}"
    logged = [line for m in messages[:finished] if m.name == "log" for line in m.data["lines"]]
    assert logged, f"no log line seen while the job ran: {names}"
    assert any(m.name == "artifact" and m.data["name"].startswith("checkpoints/") for m in messages)
    stored = service.http.get(service.url(f"/api/v1/jobs/{job['id']}/logs"), timeout=30).json()
    assert set(logged) <= set(stored["lines"])


def test_with_every_stream_slot_taken_others_are_answered_and_a_closed_stream_frees_its_slot(
    postgres: TestServer, redis_service: TestServer, s3_endpoint: str, tmp_path: Path
) -> None:
    # Two request threads per API process: one may stream, one is kept for everything else.
    env = {"GANFORGE_API_THREADS": "2"}
    with running_service(postgres, redis_service, s3_endpoint, tmp_path, env, ("api",)) as service:
        job = service.submit("train", RING_SPEC)  # no scheduler: it stays queued, streams stay
        url = service.url(f"/api/v1/jobs/{job['id']}/events")
        other = {"Authorization": f"Bearer {user_token(service.settings, 'other')}"}
        others_job = requests.post(
            service.url("/api/v1/jobs"), json=train_request(), headers=other, timeout=30
        ).json()
        streams = _fill_stream_slots(service, url, expected=API_WORKERS)
        refused = _open_stream(service, url)
        assert refused.status_code == 429, refused.text
        assert refused.headers["Content-Type"] == "application/problem+json"
        assert int(refused.headers["Retry-After"]) > 0
        assert refused.json()["limit"] == {"setting": "GANFORGE_STREAMS_PER_PROCESS", "value": 1}
        took = []
        for path in [f"/api/v1/jobs/{others_job['id']}", "/healthz"] * 5:
            began = time.perf_counter()
            answer = requests.get(service.url(path), headers=other, timeout=10)
            took.append(time.perf_counter() - began)
            assert answer.status_code == 200, answer.text
        assert statistics.median(took) < 0.5, took
        # The client goes: its slot is free again between two polls of the stream, long
        # before the stream would next write (its keep-alive, every 15 s).
        streams.pop().close()
        streams += _fill_stream_slots(service, url, expected=1, within_s=10)
        for stream in streams:  # else gunicorn's graceful stop would wait for them
            stream.close()


def _open_stream(service: Service, url: str) -> requests.Response:
    """A stream on a connection of its own (gunicorn hands each to one of its processes)."""
    headers = {**service.http.headers, "Accept": "text/event-stream"}
    return requests.get(url, headers=headers, stream=True, timeout=10)


def _fill_stream_slots(
    service: Service, url: str, expected: int, within_s: float = 30
) -> list[requests.Response]:
    """Open streams until `expected` are admitted; those refused (429: their process's one
    slot is taken) are closed and tried again, so the kernel hands the next to any process."""
    admitted: list[requests.Response] = []
    deadline = time.monotonic() + within_s
    while len(admitted) < expected:
        assert time.monotonic() < deadline, f"{len(admitted)} of {expected} streams admitted"
        response = _open_stream(service, url)
        if response.status_code == 200:
            admitted.append(response)
        else:
            assert response.status_code == 429, response.text
            response.close()
            time.sleep(0.1)
    return admitted
