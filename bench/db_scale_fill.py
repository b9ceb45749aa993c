"""The rows `bench.db_scale` measures on, generated in SQL on the server (INSERT ... SELECT over
generate_series: no rows cross the wire, no ORM loop), shaped like a big lab's history.

- `users` users; the bench user (an admin, `OWNER_ID`) owns every `OWN_SHARE`-th job;
- `jobs` jobs, one a second from 2026-01-01 so `created_at` orders them as in life: the
  newest `live_jobs(jobs)` are the live queue (queued, then running before them), all older
  ones finished (mostly succeeded), with the start and end times a finished job has;
- `events` state events spread evenly over the jobs, each job's in a path of the state
  machine's states (created, scheduled, running, preempted, queued again, ...), and
  `LONG_EVENTS` more for one of the bench user's jobs (`long_job_id`): a job requeued
  hundreds of times, the longest event list a client would read;
- then VACUUM ANALYZE, as autovacuum would leave a table that stopped growing (statistics
  for the planner, the visibility map for index-only scans).
"""

from __future__ import annotations

import hashlib
import time

import psycopg

USERS = 100
# The bench user owns this share of the jobs: a heavy user of a big lab.
OWN_SHARE = 100
OWNER_ID = "0" * 32
# The bench user's queued-jobs quota: set, so a submission's quota check counts their queue.
OWNER_MAX_QUEUED = 1_000
# The live queue of a lab of 1,000 8-GPU nodes (bench.scheduler's case): 10,000 queued, 8,000
# running; a tenth of the jobs each on a smaller database.
QUEUED_JOBS = 10_000
RUNNING_JOBS = 8_000
# Finished jobs' final states, in turn (shifted by one every OWN_SHARE jobs, so the bench
# user's jobs have every state too): most runs succeed.
FINAL_STATES = ("succeeded", "succeeded", "succeeded", "failed", "cancelled")
# A job's events after its creation cycle through these (a preempted job goes back to queued).
EVENT_PATH = ("scheduled", "running", "preempted", "queued")
# Events of the one long job: 250 preemptions, far more than a real run meets.
LONG_EVENTS = 1_000
# A finished job started a minute after its submission and ran an hour.
START_AFTER = "1 minute"
RAN_FOR = "1 hour"


def live_jobs(job_count: int) -> tuple[int, int]:
    """(queued, running) among the newest jobs."""
    return min(QUEUED_JOBS, job_count // 10), min(RUNNING_JOBS, job_count // 10)


def long_job_index(job_count: int) -> int:
    """The generated index of the long job: the bench user's newest finished job."""
    queued, running = live_jobs(job_count)
    return OWN_SHARE * ((job_count - queued - running) // OWN_SHARE)


def job_id(index: int) -> str:
    """The id the fill gives job `index` (md5 of 'job<index>', as `_FILL` writes it)."""
    return hashlib.md5(f"job{index}".encode()).hexdigest()


_STATE = (
    "CASE WHEN i > %(jobs)s - %(queued)s THEN 'queued'"
    " WHEN i > %(jobs)s - %(queued)s - %(running)s THEN 'running'"
    " ELSE (%(finals)s::text[])[1 + (i + i / %(share)s) %% %(nfinals)s] END"
)
_CREATED = "timestamptz '2026-01-01' + i * interval '1 second'"
_FILL = [
    "INSERT INTO users (id, name, is_admin, max_queued_jobs, created_at) SELECT"
    " CASE WHEN u = 0 THEN %(owner)s ELSE md5('user' || u) END, 'user' || u, u = 0,"
    " CASE WHEN u = 0 THEN %(max_queued)s END, now()"
    " FROM generate_series(0, %(users)s - 1) AS u",
    "INSERT INTO jobs (id, owner_id, kind, name, spec, state, attempt, max_attempts, devices,"
    " priority, created_at, updated_at, started_at, finished_at)"
    " SELECT md5('job' || i), CASE WHEN i %% %(share)s = 0 THEN %(owner)s"
    " ELSE md5('user' || (1 + i %% (%(users)s - 1))) END, 'train', 'job ' || i,"
    ' \'{"model": {"family": "mlp"}}\'::json, state, 1, 3, 1, 0, created, created,'
    " CASE WHEN state <> 'queued' THEN created + %(start_after)s::interval END,"
    " CASE WHEN state NOT IN ('queued', 'running')"
    " THEN created + %(ran_for)s::interval END"
    f" FROM (SELECT i, {_STATE} AS state, {_CREATED} AS created"
    " FROM generate_series(1, %(jobs)s) AS i) AS generated",
    # k: the event's place in its job's list (0: creation).
    "INSERT INTO job_events (job_id, from_state, to_state, attempt, reason, created_at)"
    " SELECT md5('job' || (1 + e %% %(jobs)s)),"
    " CASE WHEN k = 0 THEN NULL WHEN k = 1 THEN 'queued'"
    " ELSE (%(path)s::text[])[1 + (k - 2) %% %(npath)s] END,"
    " CASE WHEN k = 0 THEN 'queued' ELSE (%(path)s::text[])[1 + (k - 1) %% %(npath)s] END,"
    " 1, 'bench', timestamptz '2026-01-01' + e * interval '1 millisecond'"
    " FROM (SELECT e, e / %(jobs)s AS k FROM generate_series(0, %(events)s - 1) AS e) AS g",
    "INSERT INTO job_events (job_id, from_state, to_state, attempt, reason, created_at)"
    " SELECT md5('job' || %(long_job)s), (%(path)s::text[])[1 + (k + %(npath)s - 1) %% %(npath)s],"
    " (%(path)s::text[])[1 + k %% %(npath)s], 1, 'bench',"
    " timestamptz '2026-06-01' + k * interval '1 second'"
    " FROM generate_series(0, %(long_events)s - 1) AS k",
]


def fill(url: str, job_count: int, event_count: int) -> float:
    """Generate the rows (`url`: a libpq URL); returns the seconds it took."""
    began = time.perf_counter()
    queued, running = live_jobs(job_count)
    params = {
        "owner": OWNER_ID, "users": USERS, "share": OWN_SHARE, "max_queued": OWNER_MAX_QUEUED,
        "jobs": job_count, "events": event_count, "queued": queued, "running": running,
        "finals": list(FINAL_STATES), "nfinals": len(FINAL_STATES), "path": list(EVENT_PATH),
        "npath": len(EVENT_PATH), "start_after": START_AFTER, "ran_for": RAN_FOR,
        "long_job": long_job_index(job_count), "long_events": LONG_EVENTS,
    }  # fmt: skip
    with psycopg.connect(url, autocommit=True) as connection:
        # The generated events name jobs that exist by construction: skip the foreign key's
        # per-row check (a trigger; "replica" turns it off), most of 10M rows' insert time.
        connection.execute("SET session_replication_role = replica")
        for statement in _FILL:
            connection.execute(statement, params)  # type: ignore[arg-type]
        connection.execute("SET session_replication_role = DEFAULT")
        connection.execute("VACUUM ANALYZE")
    return time.perf_counter() - began
