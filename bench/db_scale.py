"""List, poll and events latency on a big database, and the plans that serve them.

    python -m bench.db_scale [--jobs 100000] [--events 5000000] [--repeats 50]

A throwaway PostgreSQL (tests/servers.py), migrated, filled in SQL (INSERT ... SELECT over
generate_series, no ORM loops): `--jobs` jobs of 100 users, the bench user owning 1% of them,
and `--events` state events spread evenly over the jobs; then ANALYZE. Each query is the one
ganforge's own domain functions send (captured from SQLAlchemy as they run):

- **list**: `shared.jobs.requests.list_jobs`, the caller's newest 50 (GET /api/v1/jobs);
- **list, second page**: the same after the first page's cursor;
- **list, state filter**: `?state=running`;
- **list, every user**: an admin's `?all=true` (the dashboard's jobs page);
- **poll**: `shared.jobs.requests.get_job` (GET /api/v1/jobs/<id>);
- **events**: `shared.jobs.requests.job_events` (GET /api/v1/jobs/<id>/events).

Each runs R times through ganforge's function (ORM) and, as the bare tool, the same SQL with
the same parameters through plain psycopg, alternated; the figures are median milliseconds and
their ratio. Each query's `EXPLAIN (ANALYZE, FORMAT JSON)` goes into the JSON, and whether any
node of the plan reads a whole table (Seq Scan) on a table that holds more than a few pages.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event
from sqlalchemy.orm import Session

from bench.lab import Lab, given_or_own_lab, median, write_json
from shared.db import get_engine
from shared.jobs import requests as jobs
from shared.migrate import upgrade
from shared.models import User
from tests.services import fresh_database

USERS = 100
# The bench user owns this share of the jobs: a heavy user of a big lab.
OWN_SHARE = 100
OWNER_ID = "0" * 32
# Seconds between generated jobs' creation times (so `created_at` orders them, as in life).
STATES = ("succeeded", "succeeded", "succeeded", "failed", "cancelled", "queued", "running")

_FILL = [
    "INSERT INTO users (id, name, is_admin, created_at) SELECT"
    " CASE WHEN u = 0 THEN %(owner)s ELSE md5('user' || u) END, 'user' || u, u = 0, now()"
    " FROM generate_series(0, %(users)s - 1) AS u",
    "INSERT INTO jobs (id, owner_id, kind, name, spec, state, attempt, max_attempts, devices,"
    " priority, created_at, updated_at) SELECT md5('job' || i),"
    " CASE WHEN i %% %(share)s = 0 THEN %(owner)s ELSE md5('user' || (1 + i %% (%(users)s - 1)))"
    " END, 'train', 'job ' || i, '{\"model\": {\"family\": \"mlp\"}}'::json,"
    " (%(states)s::text[])[1 + i %% %(nstates)s], 1, 3, 1, 0,"
    " timestamptz '2026-01-01' + i * interval '1 second',"
    " timestamptz '2026-01-01' + i * interval '1 second' FROM generate_series(1, %(jobs)s) AS i",
    "INSERT INTO job_events (job_id, from_state, to_state, attempt, reason, created_at)"
    " SELECT md5('job' || (1 + e %% %(jobs)s)), 'queued', 'running', 1, 'bench',"
    " timestamptz '2026-01-01' + e * interval '1 millisecond'"
    " FROM generate_series(0, %(events)s - 1) AS e",
    "ANALYZE",
]


def fill(url: str, job_count: int, event_count: int) -> float:
    """Generate the rows in SQL; returns the seconds it took."""
    began = time.perf_counter()
    params = {"owner": OWNER_ID, "users": USERS, "share": OWN_SHARE, "jobs": job_count,
              "events": event_count, "states": list(STATES), "nstates": len(STATES)}  # fmt: skip
    with psycopg.connect(url, autocommit=True) as connection:
        for statement in _FILL:
            connection.execute(statement, params if "%(" in statement else None)
    return time.perf_counter() - began


@contextmanager
def captured(session: Session) -> Iterator[list[tuple[str, Any]]]:
    """The (SQL, parameters) SQLAlchemy sends while the block runs."""
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
        statements.append((sql, params))

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _queries(session: Session, owner: User) -> dict[str, Callable[[], object]]:
    first = jobs.list_jobs(session, owner)
    mine = first.jobs[len(first.jobs) // 2].id
    return {
        "list": lambda: jobs.list_jobs(session, owner),
        "list_page_2": lambda: jobs.list_jobs(session, owner, cursor=first.next_cursor),
        "list_state_running": lambda: jobs.list_jobs(session, owner, state="running"),
        "list_every_user": lambda: jobs.list_jobs(session, owner, every_user=True),
        "poll": lambda: jobs.get_job(session, owner, mine),
        "events": lambda: jobs.job_events(session, owner, mine),
    }


def _plain_sql(statements: list[tuple[str, Any]]) -> tuple[str, Any]:
    """The query of interest among those captured: the last one (get_job's check comes first
    in job_events)."""
    return statements[-1]


def _seq_scans(plan: dict[str, Any], big: set[str]) -> list[str]:
    found = []
    if plan.get("Node Type") == "Seq Scan" and plan.get("Relation Name") in big:
        found.append(plan["Relation Name"])
    for child in plan.get("Plans", []):
        found.extend(_seq_scans(child, big))
    return found


def _index_names(plan: dict[str, Any]) -> list[str]:
    names = [plan["Index Name"]] if "Index Name" in plan else []
    for child in plan.get("Plans", []):
        names.extend(_index_names(child))
    return names


def measure(
    job_count: int, event_count: int, repeats: int, lab: Lab | None = None
) -> dict[str, Any]:
    with given_or_own_lab(lab) as own, fresh_database(own.postgres_url) as url:
        upgrade(url)
        fill_s = fill(url.replace("postgresql+psycopg://", "postgresql://"), job_count,
                      event_count)  # fmt: skip
        print(f"generated {job_count:,} jobs and {event_count:,} events in {fill_s:.1f} s",
              flush=True)  # fmt: skip
        engine = get_engine(url)
        results: dict[str, Any] = {}
        with Session(engine) as session, engine.raw_connection() as raw:
            owner = session.get(User, OWNER_ID)
            assert owner is not None
            for name, run in _queries(session, owner).items():
                with captured(session) as statements:
                    run()
                sql, params = _plain_sql(statements)
                cursor = raw.cursor()
                orm_ms, plain_ms = [], []
                for repeat in range(repeats):
                    for side in ("orm", "plain") if repeat % 2 == 0 else ("plain", "orm"):
                        began = time.perf_counter()
                        if side == "orm":
                            run()
                            session.expunge_all()  # no identity-map shortcut on the next run
                        else:
                            cursor.execute(sql, params)
                            cursor.fetchall()
                        spent = (time.perf_counter() - began) * 1000
                        (orm_ms if side == "orm" else plain_ms).append(spent)
                cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
                explain = cursor.fetchone()[0]
                explain = json.loads(explain) if isinstance(explain, str) else explain
                plan = explain[0]["Plan"]
                results[name] = {
                    "ganforge_ms": round(median(orm_ms), 3),
                    "plain_sql_ms": round(median(plain_ms), 3),
                    "ratio": round(median(orm_ms) / median(plain_ms), 2),
                    "execution_ms": explain[0]["Execution Time"],
                    "indexes": sorted(set(_index_names(plan))),
                    "seq_scans": _seq_scans(plan, {"jobs", "job_events"}),
                    "sql": sql,
                    "explain": explain,
                }
                raw.rollback()
                session.rollback()
        engine.dispose()
    return {
        "jobs": job_count,
        "events": event_count,
        "repeats": repeats,
        "fill_s": round(fill_s, 1),
        "queries": results,
        "goal": {
            "no_seq_scans": all(not q["seq_scans"] for q in results.values()),
        },
    }


def main(argv: list[str] | None = None, lab: Lab | None = None) -> dict[str, Any]:
    """Run from the command line; `lab` reuses running servers (the smoke tests' own)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--json", type=Path, default=Path("bench-db_scale.json"))
    args = parser.parse_args(argv)
    results = measure(args.jobs, args.events, args.repeats, lab)
    print(f"{'query':20s} {'ganforge ms':>12s} {'plain SQL ms':>13s} {'ratio':>6s}  plan")
    for name, q in results["queries"].items():
        plan = ", ".join(q["indexes"]) or "no index"
        if q["seq_scans"]:
            plan += f"; SEQ SCAN on {', '.join(q['seq_scans'])}"
        print(f"{name:20s} {q['ganforge_ms']:12.2f} {q['plain_sql_ms']:13.2f} {q['ratio']:6.2f}"
              f"  {plan}")  # fmt: skip
    return write_json(args.json, "db_scale", results)


if __name__ == "__main__":
    main()
