"""A running job rides out its infrastructure: PostgreSQL stopped for 30 s mid-training, Redis
killed and restarted empty. Every job ends once, in its first attempt, with a valid path."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import requests

from tests.helpers import with_steps
from tests.resilience.conftest import FaultLab

# About 12 ms a step on one thread. The outage starts near step 50, so the checkpoint of step
# 1000 falls inside it: its row waits for the database while the job goes on.
STEADY_RING: dict[str, Any] = {
    "model": {"family": "mlp", "width": 256},
    "latent": {"dim": 4},
    "data": {"source": "toy:ring8"},
    "train": {"steps": 1500, "batch_size": 1024, "seed": 3},
    "checkpoint_every": 1000,
    "sample_every": 1500,
}
OUTAGE_S = 30
HAPPY_PATH = ["queued", "scheduled", "running", "succeeded"]


def _path(lab: FaultLab, job_id: str) -> list[str]:
    events = lab.service.http.get(lab.service.url(f"/api/v1/jobs/{job_id}/events")).json()
    return [event["to"] for event in events["events"]]


def test_training_rides_out_postgres_stopped_for_30_s_and_the_api_answers_503(
    lab: FaultLab, recovery: Any
) -> None:
    service = lab.service
    job = service.submit("train", STEADY_RING, name="through-an-outage")
    service.wait_for(job["id"], lambda j: (j["progress"] or {}).get("step", 0) >= 50)
    at_stop = service.job(job["id"])["progress"]["step"]

    lab.postgres.stop()
    stopped_at = time.monotonic()
    answer = service.http.get(service.url(f"/api/v1/jobs/{job['id']}"), timeout=30)
    assert answer.status_code == 503, answer.text
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.headers["Retry-After"] == "5"
    assert answer.json()["title"] == "Database unavailable"
    assert requests.get(service.url("/healthz"), timeout=5).status_code == 200
    ready = requests.get(service.url("/readyz"), timeout=10)
    assert ready.status_code == 503 and ready.json()["checks"]["broker"] == "ok"
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped_at)))
    lab.postgres.start()
    back = time.monotonic()
    job_url = service.url(f"/api/v1/jobs/{job['id']}")
    service.wait_until(lambda: service.http.get(job_url, timeout=10).status_code == 200, 60)
    recovery("PostgreSQL back -> the API answers 200 again", time.monotonic() - back)
    seen = service.wait_for(job["id"], lambda j: (j["progress"] or {}).get("step", 0) > at_stop)
    assert seen["attempt"] == 1

    done = service.wait_final(job["id"], timeout_s=300)
    assert done["state"] == "succeeded", done["error"]
    assert done["attempt"] == 1, "the outage cost no attempt"
    assert done["progress"]["step"] == 1500
    assert _path(lab, job["id"]) == HAPPY_PATH
    artifacts = service.artifacts(job["id"]).values()
    assert sorted(a["step"] for a in artifacts if a["kind"] == "checkpoint") == [1000, 1500]


def test_redis_killed_and_restarted_empty_loses_no_job_and_starves_no_device(
    lab: FaultLab, recovery: Any
) -> None:
    """Both devices busy when Redis dies; a job submitted during the outage waits for one. Once
    Redis is back (empty) and the shorter pre-outage job ends, the waiting job runs on the
    freed device within 15 s, placed once, while the longer one still runs: the worker still
    knows which of its pool's slots are busy and takes its full share of messages."""
    service = lab.service
    long = service.submit("train", with_steps(STEADY_RING, 4000), name="long")
    short = service.submit("train", with_steps(STEADY_RING, 400), name="short")
    for job in (long, short):
        service.wait_for(job["id"], lambda j: j["state"] == "running")

    lab.redis.kill()
    during = service.submit("train", with_steps(STEADY_RING, 100), name="during")
    time.sleep(3)
    assert service.job(during["id"])["state"] == "queued", "no free device, nothing sent"
    lab.redis.start()
    ended = service.wait_for(short["id"], lambda j: j["state"] == "succeeded")
    assert service.job(long["id"])["state"] == "running"
    started = service.wait_for(during["id"], lambda j: j["started_at"] is not None, 60)
    # The API's own timestamps: the freed device is often taken before a poll sees it free.
    waited = (_instant(started["started_at"]) - _instant(ended["finished_at"])).total_seconds()
    recovery("Redis back, a pre-outage job ends -> the waiting job running", waited)
    path = _path(lab, during["id"])
    assert waited < 15, f"the job waited {waited:.1f} s for a free device; path {path}"
    assert path[:3] == ["queued", "scheduled", "running"], (path, _consumer_lines(service))

    for job in (short, during):
        done = service.wait_final(job["id"], timeout_s=120)
        assert (done["state"], done["attempt"]) == ("succeeded", 1), done["error"]
        assert _path(lab, job["id"]) == HAPPY_PATH, "training does not touch the broker"
    assert service.job(long["id"])["state"] == "running"
    cancel = service.http.post(service.url(f"/api/v1/jobs/{long['id']}/cancel"), timeout=30)
    assert cancel.status_code == 202, cancel.text
    assert service.wait_final(long["id"], timeout_s=120)["state"] == "cancelled"


def _instant(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


def _consumer_lines(service: Any) -> list[str]:
    """The worker's lines about its broker connection and the messages it took."""
    marks = (" received", "succeeded in", "prefetch", "Connected to", "duplicate", "consumer")
    return [line for line in service.worker_log().splitlines() if any(m in line for m in marks)]
