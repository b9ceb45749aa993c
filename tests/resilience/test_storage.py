"""S3 gone for 30 s while a job writes checkpoints: the job waits and finishes in its first
attempt, every artifact whole and listed once. S3 hung while /readyz is polled: each probe
answers within 3 s and the rest of the API does not notice."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from tests.helpers import with_steps
from tests.resilience.conftest import FaultLab
from tests.resilience.test_outages import HAPPY_PATH, STEADY_RING

OUTAGE_S = 30


def test_a_job_rides_out_s3_stopped_for_30_s_during_its_checkpoints(
    lab: FaultLab, recovery: Any
) -> None:
    service = lab.service
    spec = {**STEADY_RING, "checkpoint_every": 500}
    job = service.submit("train", spec, name="through-an-s3-outage")
    # Close enough to step 500 that its checkpoint falls inside the outage even on a busy
    # machine (a few steps per second still covers 200 steps in 30 s), far enough that it has
    # not been written yet (progress reports lag the run by a second or two).
    service.wait_for(job["id"], lambda j: (j["progress"] or {}).get("step", 0) >= 300)

    lab.s3.stop()
    time.sleep(OUTAGE_S)
    stored_during = {a["step"] for a in service.artifacts(job["id"]).values()}
    assert 500 not in stored_during, "the checkpoint of step 500 fell inside the outage"
    lab.s3.start()
    back = time.monotonic()
    service.wait_for(
        job["id"],
        lambda j: any(a["step"] == 500 for a in service.artifacts(j["id"]).values()),
        timeout_s=120,
    )
    recovery("S3 back -> the checkpoint held up by the outage is stored", time.monotonic() - back)

    done = service.wait_final(job["id"], timeout_s=300)
    assert (done["state"], done["attempt"]) == ("succeeded", 1), done["error"]
    assert done["progress"]["step"] == 1500
    assert lab.path(job["id"]) == HAPPY_PATH
    listing = service.http.get(service.url(f"/api/v1/jobs/{job['id']}/artifacts")).json()
    names = Counter(a["name"] for a in listing["artifacts"])
    assert all(count == 1 for count in names.values()), names
    checkpoints = [a for a in listing["artifacts"] if a["kind"] == "checkpoint"]
    assert sorted(a["step"] for a in checkpoints) == [500, 1000, 1500]
    for artifact in listing["artifacts"]:  # whole objects: what is listed is what is stored
        data = service.download(job["id"], artifact["name"])
        assert (len(data), hashlib.sha256(data).hexdigest()) == (
            artifact["size"],
            artifact["sha256"],
        ), artifact["name"]
    log = service.download(job["id"], "log.txt").decode()
    assert "storage unreachable (try 1), retrying" in log, "the job's log tells of the wait"
    lab.assert_nothing_left(job["id"])


def test_readyz_answers_within_3_s_while_s3_hangs_and_other_routes_do_not_notice(
    lab: FaultLab, recovery: Any
) -> None:
    service = lab.service
    job = service.submit("train", with_steps(STEADY_RING, 20), name="before")
    service.wait_final(job["id"])
    lab.s3.pause()
    try:

        def probe() -> tuple[float, int, dict[str, Any]]:
            started = time.monotonic()
            answer = requests.get(service.url("/readyz"), timeout=10)
            return time.monotonic() - started, answer.status_code, answer.json()

        def timed(path: str) -> tuple[float, int]:
            # A connection of its own, as each probe's: a kept-alive one of the shared session
            # may be closed by the server just as it is reused, which is no answer of the API.
            started = time.monotonic()
            answer = requests.get(service.url(path), headers=service.http.headers, timeout=10)
            return time.monotonic() - started, answer.status_code

        with ThreadPoolExecutor(max_workers=12) as pool:
            # Two waves of 8 concurrent probes: the second finds the first's S3 check still
            # hanging, and must neither queue behind it nor starve the other routes.
            probes = [pool.submit(probe) for _ in range(8)]
            time.sleep(0.5)
            probes += [pool.submit(probe) for _ in range(8)]
            others = [
                pool.submit(timed, path)
                for path in ("/healthz", "/api/v1/jobs", f"/api/v1/jobs/{job['id']}")
                for _ in range(2)
            ]
            probe_results = [future.result() for future in probes]
            other_results = [future.result() for future in others]
    finally:
        lab.s3.resume()

    slowest = max(seconds for seconds, _, _ in probe_results)
    assert slowest <= 3.0, f"a /readyz took {slowest:.2f} s"
    for _, status, body in probe_results:
        assert status == 503 and body["checks"]["storage"].startswith("error"), body
        assert body["checks"]["database"] == "ok" and body["checks"]["broker"] == "ok", body
    assert all(status == 200 for _, status in other_results), other_results
    assert max(seconds for seconds, _ in other_results) < 3.0, other_results
    recovery("slowest /readyz while S3 hangs (16 concurrent probes)", slowest)

    back = time.monotonic()
    service.wait_until(lambda: requests.get(service.url("/readyz"), timeout=10).ok, 30)
    assert time.monotonic() - back < 10
