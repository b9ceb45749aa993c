"""List, poll and events latency on a big database, and the plans that serve them.

    python -m bench.db_scale [--jobs 100000] [--events 5000000] [--repeats 50]

A throwaway PostgreSQL (tests/servers.py), migrated, filled in SQL by `bench.db_scale_fill`
(a big lab's history: `--jobs` jobs of 100 users, the bench user owning 1% of them, a live
queue of the newest, `--events` state events spread over the jobs and one job with 1,000).
Each query is the one ganforge's own code sends (captured from SQLAlchemy as it runs). The
API's reads, each with a goal of 10 ms and an index:

- **list**: `shared.jobs.requests.list_jobs`, the caller's newest 50 (GET /api/v1/jobs);
- **list, second page** and **deep page**: the same after the first page's cursor, and after
  following cursors 90% of the way down the caller's history (a keyset, not an OFFSET: a deep
  page should cost what the first does);
- **list, state filter**: `?state=running` (the live tail) and `?state=failed` (spread over
  the whole history), the caller's and every user's;
- **list, every user**: an admin's `?all=true` (the dashboard's jobs page);
- **poll**: `shared.jobs.requests.view_job` (GET /api/v1/jobs/<id>);
- **events**: `shared.jobs.event_pages.job_events` (GET /api/v1/jobs/<id>/events), the first
  page for a job with the average number of events and for the long job, and the long job's
  last page (reached by following every cursor).

And, measured the same way but with no goal, the other reads whose cost grows with the
history: a submission's queued-jobs quota count, a scheduler pass's reads (`read_pool`) and
the `/metrics` scrape's (`api.db_metrics.DatabaseCollector`).

Each runs R times through ganforge's function (ORM) and, as the bare tool, the same SQL
statements with the same parameters through plain psycopg, alternated; the figures are median
milliseconds and their ratio. Each statement's `EXPLAIN (ANALYZE, FORMAT JSON)` goes into the
JSON, and whether any node of a plan reads a whole big table (Seq Scan).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from api.db_metrics import DatabaseCollector
from bench.db_scale_fill import OWN_SHARE, OWNER_ID, fill, job_id, long_job_index
from bench.lab import Lab, given_or_own_lab, median, write_json
from scheduler.pool_state import read_pool
from shared.config import DEFAULT_USAGE_HALF_LIFE_S
from shared.db import get_engine
from shared.job_timings import backfill
from shared.jobs import event_pages
from shared.jobs import requests as jobs
from shared.migrate import upgrade
from shared.models import User
from shared.pool.overview import check_queued_quota
from tests.services import fresh_database

# The goal of each API read at 1,000,000 jobs / 10,000,000 events (issue 26).
GOAL_MS = 10.0
# How far down the caller's history the deep page is.
DEEP_SHARE = 0.9
# Tables big enough that reading one whole is a finding.
BIG_TABLES = {"jobs", "job_events"}

Probe = Callable[[], object]


@contextmanager
def captured(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The (SQL, parameters) SQLAlchemy sends on `engine` while the block runs."""
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
        statements.append((sql, params))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _deep_cursor(session: Session, owner: User, own_jobs: int) -> str | None:
    """The cursor a client holds after paging DEEP_SHARE of the way down its `own_jobs`."""
    page = jobs.list_jobs(session, owner)
    for _ in range(int(DEEP_SHARE * own_jobs / jobs.DEFAULT_PAGE_SIZE) - 1):
        if page.next_cursor is None:
            break
        page = jobs.list_jobs(session, owner, cursor=page.next_cursor)
    session.expunge_all()
    return page.next_cursor


def _last_events_cursor(session: Session, owner: User, job: str) -> int:
    """The cursor of the last page of `job`'s events, reached by following every page."""
    cursor, page = 0, event_pages.job_events(session, owner, job)
    while page.next_cursor is not None:
        cursor = int(page.next_cursor)
        page = event_pages.job_events(session, owner, job, after=cursor)
    return cursor


def api_reads(session: Session, owner: User, job_count: int) -> dict[str, Probe]:
    """The API's reads on the bench user's behalf (an admin, so `every_user` is allowed)."""
    first = jobs.list_jobs(session, owner)
    mine = first.jobs[len(first.jobs) // 2].id
    deep = _deep_cursor(session, owner, job_count // OWN_SHARE)
    long_job = job_id(long_job_index(job_count))
    last_page = _last_events_cursor(session, owner, long_job)
    return {
        "list": lambda: jobs.list_jobs(session, owner),
        "list_page_2": lambda: jobs.list_jobs(session, owner, cursor=first.next_cursor),
        "list_page_deep": lambda: jobs.list_jobs(session, owner, cursor=deep),
        "list_state_running": lambda: jobs.list_jobs(session, owner, state="running"),
        "list_state_failed": lambda: jobs.list_jobs(session, owner, state="failed"),
        "list_every_user": lambda: jobs.list_jobs(session, owner, every_user=True),
        "list_every_user_failed": lambda: jobs.list_jobs(
            session, owner, every_user=True, state="failed"
        ),
        "poll": lambda: jobs.view_job(session, owner, mine),
        "events": lambda: event_pages.job_events(session, owner, mine),
        "events_long_job": lambda: event_pages.job_events(session, owner, long_job),
        "events_long_job_last_page": lambda: event_pages.job_events(
            session, owner, long_job, after=last_page
        ),
    }


def history_reads(session: Session, owner: User, url: str) -> dict[str, Probe]:
    """Other reads whose cost may grow with the history: no goal, measured to know."""
    collector = DatabaseCollector(url)
    return {
        "submit_quota_count": lambda: check_queued_quota(session, owner),
        "scheduler_read_pool": lambda: read_pool(session, DEFAULT_USAGE_HALF_LIFE_S),
        "metrics_scrape": lambda: list(collector.collect()),
    }


def _seq_scans(plan: dict[str, Any]) -> list[str]:
    found = []
    if plan.get("Node Type") == "Seq Scan" and plan.get("Relation Name") in BIG_TABLES:
        found.append(plan["Relation Name"])
    for child in plan.get("Plans", []):
        found.extend(_seq_scans(child))
    return found


def _index_names(plan: dict[str, Any]) -> list[str]:
    names = [plan["Index Name"]] if "Index Name" in plan else []
    for child in plan.get("Plans", []):
        names.extend(_index_names(child))
    return names


def _explain(cursor: Any, sql: str, params: Any) -> dict[str, Any]:
    cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
    explain = cursor.fetchone()[0]
    return (json.loads(explain) if isinstance(explain, str) else explain)[0]  # type: ignore[no-any-return]


def measure_probe(
    probe: Probe, session: Session, raw: Any, engine: Engine, repeats: int
) -> dict[str, Any]:
    """Time `probe` (ganforge) against the statements it sends, run by psycopg (the bare
    tool), alternated; explain each statement."""
    with captured(engine) as statements:
        probe()
    session.expunge_all()
    cursor = raw.cursor()
    orm_ms, plain_ms = [], []
    for repeat in range(repeats):
        for side in ("orm", "plain") if repeat % 2 == 0 else ("plain", "orm"):
            began = time.perf_counter()
            if side == "orm":
                probe()
                session.expunge_all()  # no identity-map shortcut on the next run
            else:
                for sql, params in statements:
                    cursor.execute(sql, params)
                    cursor.fetchall()
            spent = (time.perf_counter() - began) * 1000
            (orm_ms if side == "orm" else plain_ms).append(spent)
    explains = [_explain(cursor, sql, params) for sql, params in statements]
    raw.rollback()
    session.rollback()
    return {
        "ganforge_ms": round(median(orm_ms), 3),
        "plain_sql_ms": round(median(plain_ms), 3),
        "ratio": round(median(orm_ms) / median(plain_ms), 2),
        "execution_ms": round(sum(e["Execution Time"] for e in explains), 3),
        "indexes": sorted({name for e in explains for name in _index_names(e["Plan"])}),
        "seq_scans": sorted({name for e in explains for name in _seq_scans(e["Plan"])}),
        "sql": [sql for sql, _ in statements],
        "explain": explains,
    }


def measure(
    job_count: int,
    event_count: int,
    repeats: int,
    history_repeats: int,
    lab: Lab | None = None,
) -> dict[str, Any]:
    with given_or_own_lab(lab) as own, fresh_database(own.postgres_url) as url:
        upgrade(url)
        fill_s = fill(url.replace("postgresql+psycopg://", "postgresql://"), job_count,
                      event_count)  # fmt: skip
        print(f"generated {job_count:,} jobs and {event_count:,} events in {fill_s:.1f} s",
              flush=True)  # fmt: skip
        engine = get_engine(url)
        # The fill writes rows, not state changes: count its history into the timing
        # histograms as migration 0016 does on an existing database, and time that.
        began = time.perf_counter()
        with engine.begin() as connection:
            backfill(connection)
        backfill_s = time.perf_counter() - began
        print(f"backfilled the timing histograms in {backfill_s:.1f} s", flush=True)
        api, history = {}, {}
        with Session(engine) as session, engine.raw_connection() as raw:
            owner = session.get(User, OWNER_ID)
            assert owner is not None
            for name, probe in api_reads(session, owner, job_count).items():
                api[name] = measure_probe(probe, session, raw, engine, repeats)
                print(f"  {name}: {api[name]['ganforge_ms']:.2f} ms", flush=True)
            for name, probe in history_reads(session, owner, url).items():
                history[name] = measure_probe(probe, session, raw, engine, history_repeats)
                print(f"  {name}: {history[name]['ganforge_ms']:.2f} ms", flush=True)
        engine.dispose()
    return {
        "jobs": job_count,
        "events": event_count,
        "repeats": repeats,
        "fill_s": round(fill_s, 1),
        "timings_backfill_s": round(backfill_s, 1),
        "queries": api,
        "history_reads": history,
        "goal": {
            "no_seq_scans": all(not q["seq_scans"] for q in api.values()),
            "under_10_ms": all(q["ganforge_ms"] < GOAL_MS for q in api.values()),
        },
    }


def _print_table(title: str, queries: dict[str, Any]) -> None:
    print(f"{title:24s} {'ganforge ms':>12s} {'plain SQL ms':>13s} {'ratio':>6s}  plan")
    for name, q in queries.items():
        plan = ", ".join(q["indexes"]) or "no index"
        if q["seq_scans"]:
            plan += f"; SEQ SCAN on {', '.join(q['seq_scans'])}"
        print(f"{name:24s} {q['ganforge_ms']:12.2f} {q['plain_sql_ms']:13.2f} {q['ratio']:6.2f}"
              f"  {plan}")  # fmt: skip


def main(argv: list[str] | None = None, lab: Lab | None = None) -> dict[str, Any]:
    """Run from the command line; `lab` reuses running servers (the smoke tests' own)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--history-repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("bench-db_scale.json"))
    args = parser.parse_args(argv)
    results = measure(args.jobs, args.events, args.repeats, args.history_repeats, lab)
    _print_table("API read", results["queries"])
    _print_table("history read (no goal)", results["history_reads"])
    return write_json(args.json, "db_scale", results)


if __name__ == "__main__":
    main()
