"""Path confinement on the worker's side: a training job on a folder that lies under the data
root while every image in it is a link to a file outside.

The API checks the folder's resolved path, which is inside the root; what matters is whether
the data the job reads is. Holding means the submission is refused (422 on spec.data.path) or
the job fails with a reason that names the data, and never trains.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.hostile_cases import JOBS, Outcome, Target, train_body
from bench.hostile_http import Answer

CATEGORY = "path confinement"
NAME = "job on root/linked/, a folder of links to images outside the root"
# The node label that only the run's worker has, so this job alone runs on it.
LANE = {"lane": "hostile"}
FINAL_STATES = ("succeeded", "failed", "cancelled")
# Words of a failure that blames the data's location (worker/rank_inputs.py's messages
# start with the field; a fix may say "link" or "outside").
CLEAR_REASONS = ("spec.data.path", "link", "outside", "data root")


def submit_linked_job(target: Target, folder: Path) -> Answer:
    """Submit the job (kept: it is meant to reach the worker)."""
    body = train_body(
        {"source": "images", "path": str(folder), "resize": 28, "channels": 1},
        latent={"dim": 4},
        train={"steps": 2, "batch_size": 4},
        checkpoint_every=2,
        sample_every=2,
        resources={"labels": LANE},
    )
    return target.request("POST", JOBS, json_body=body, keep=True)


def linked_job_outcome(target: Target, submitted: Answer, wait_s: float | None) -> Outcome:
    """Judge the submission, and the job's end when it was accepted and a worker runs
    (`wait_s` None: no worker in this run)."""
    if submitted.status == 422:
        held = "spec.data.path" in submitted.body.decode("utf-8", "replace")
        reasons = [] if held else ["refused, but not naming spec.data.path"]
        return Outcome(CATEGORY, NAME, held, reasons, submitted.summary(), submitted.seconds)
    if submitted.status != 201:
        return Outcome(
            CATEGORY,
            NAME,
            False,
            [f"submission answered {submitted.status}"],
            submitted.summary(),
            submitted.seconds,
        )
    if wait_s is None:
        return Outcome(
            CATEGORY,
            NAME,
            False,
            ["accepted at submission; no worker in this run"],
            submitted.summary(),
            submitted.seconds,
        )
    job_id = (submitted.json() or {})["id"]
    began = time.perf_counter()
    job: dict = {}
    while time.perf_counter() - began < wait_s:
        job = target.request("GET", f"{JOBS}/{job_id}").json() or {}
        if job.get("state") in FINAL_STATES:
            break
        time.sleep(1.0)
    state, error = job.get("state"), job.get("error") or ""
    got = f"accepted at submission, then {state}" + (f": {error[:160]}" if error else "")
    if state == "failed" and any(word in error for word in CLEAR_REASONS):
        return Outcome(CATEGORY, NAME, True, [], got, time.perf_counter() - began)
    if state == "succeeded":
        reasons = ["the job trained on files outside the data root"]
    elif state in FINAL_STATES:
        reasons = [f"{state} without a reason naming the data's location"]
    else:
        reasons = [f"still {state} after {wait_s:g} s"]
    return Outcome(CATEGORY, NAME, False, reasons, got, time.perf_counter() - began)
