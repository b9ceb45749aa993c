"""A real training job followed live: the API's event stream (gunicorn's gthread workers),
the CLI's client reading it, rank 0's log uploaded while the job runs."""

from __future__ import annotations

from cli.client import Client
from tests.e2e.conftest import Service
from tests.helpers import RING_SPEC, with_steps

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
