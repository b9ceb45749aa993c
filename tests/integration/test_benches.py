"""The service benchmarks run in a tiny configuration and write JSON with sane figures, so
they do not rot between `make bench` runs. They run on the test session's servers (a bench
started from the command line starts its own), with a second or so of load and one sample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import api, db_scale, queue, report, shard_cache, storage, streams, train_reporting
from bench.db_scale_fill import LONG_EVENTS
from bench.lab import Lab
from shared.jobs.event_pages import DEFAULT_EVENTS_PAGE_SIZE
from tests.servers import TestServer


@pytest.fixture
def lab(postgres: TestServer, redis_service: TestServer, s3_endpoint: str) -> Lab:
    """The session's servers: each bench makes its own database, bucket and queue on them."""
    return Lab(postgres.url, redis_service.url, s3_endpoint)


def _stamped(results: dict[str, Any], name: str) -> None:
    assert results["bench"] == name
    assert results["machine"]["cpus"] >= 1
    assert results["date"]


def test_api_bench_measures_both_sides_of_every_operation(tmp_path: Path, lab: Lab) -> None:
    out = tmp_path / "bench-api.json"
    argv = ["--duration", "0.5", "--clients", "2", "--turn", "0.25", "--json", str(out)]
    results = api.main(argv, lab)
    _stamped(results, "api")
    assert out.exists()
    for op in ("poll", "list", "submit"):
        figures = results["operations"][op]
        for side in ("ganforge", "bare"):
            assert figures[side]["requests"] > 0, figures
            assert figures[side]["errors"] == 0, figures
            assert 0 < figures[side]["p50_ms"] <= figures[side]["p99_ms"]
            # its own gunicorn processes' CPU, read in its turns: each answer costs some
            assert figures[side]["server_cpu_ms_per_request"] > 0, figures
        assert figures["ratio"] > 0
    assert isinstance(results["goal"]["met"], bool)


def test_queue_bench_times_post_to_running_and_a_raw_celery_round_trip(
    tmp_path: Path, lab: Lab
) -> None:
    results = queue.main(
        ["--samples", "1", "--no-warm-up", "--first-step", "0", "--json", str(tmp_path / "q.json")],
        lab,
    )
    _stamped(results, "queue")
    ours, raw = results["ganforge_to_running_ms"], results["raw_celery_ms"]
    assert len(ours["all"]) == len(raw["all"]) == 1
    # Both are real round trips through Redis: positive, and under the bench's own bounds.
    assert 0 < raw["median"] < queue.TASK_TIMEOUT_S * 1000
    assert 0 < ours["median"] < queue.JOB_TIMEOUT_S * 1000
    assert results["extra_ms"] == pytest.approx(ours["median"] - raw["median"], abs=0.2)


def test_storage_bench_checks_the_bytes_and_rates_every_path(tmp_path: Path, lab: Lab) -> None:
    results = storage.main(
        ["--mib", "1", "--repeats", "1", "--json", str(tmp_path / "s.json")], lab
    )
    _stamped(results, "storage")
    assert set(results["mb_per_s"]) == {
        "upload_boto3",
        "upload_boto3_put",
        "upload_ganforge",
        "download_boto3",
        "download_api_stream",
        "download_presigned",
    }
    assert all(rate["median"] > 0 for rate in results["mb_per_s"].values())
    assert set(results["ratios"]) == {
        "upload", "upload_vs_put_object", "download_api_stream", "download_presigned"
    }  # fmt: skip


def test_reporting_bench_times_both_sides_and_the_reporters_round_trips(
    tmp_path: Path, lab: Lab
) -> None:
    results = train_reporting.run(40, 1, tmp_path / "bench-train_reporting.json", lab)
    _stamped(results, "train_reporting")
    assert results["pairs"] == 1 and results["window_steps"] == 30
    assert all(results["step_ms"][side]["median"] > 0 for side in ("null", "reporting"))
    # The window opens at step 10, where the reporter writes its first progress row (from
    # its background sender, or the training thread at the last step).
    trips = results["agent_round_trips"]
    assert sum(trips[name]["calls"] for name in trips if name.startswith("progress (")) >= 1
    assert results["hooks_ms"]["reporting"]["report_progress"]["median"] > 0
    assert "training step with the reporter" in report.table(tmp_path)


def test_db_scale_bench_explains_each_query_and_finds_no_seq_scan(tmp_path: Path, lab: Lab) -> None:
    argv = [
        "--jobs",
        "3000",
        "--events",
        "6000",
        "--repeats",
        "2",
        "--json",
        str(tmp_path / "d.json"),
    ]
    results = db_scale.main(argv, lab)
    _stamped(results, "db_scale")
    queries = results["queries"]
    assert set(queries) == {"list", "list_page_2", "list_page_deep", "list_state_running",
                            "list_state_failed", "list_every_user", "list_every_user_failed",
                            "poll", "events", "events_long_job",
                            "events_long_job_last_page"}  # fmt: skip
    assert set(results["history_reads"]) == {"submit_quota_count", "scheduler_read_pool",
                                             "metrics_scrape"}  # fmt: skip
    # The long job's events (its 1,000 and its share of the spread, 6,000 over 3,000 jobs)
    # are read a page at a time: the first page reads one row past it, the last the rest.
    long_plan = queries["events_long_job"]["explain"][-1]["Plan"]
    assert long_plan["Actual Rows"] == DEFAULT_EVENTS_PAGE_SIZE + 1, long_plan
    last_plan = queries["events_long_job_last_page"]["explain"][-1]["Plan"]
    assert last_plan["Actual Rows"] == (LONG_EVENTS + 1) % DEFAULT_EVENTS_PAGE_SIZE + 1, last_plan
    for name, query in queries.items():
        assert query["explain"][0]["Plan"]["Node Type"], name
        assert query["indexes"], f"{name} uses no index: {query['sql']}"
        assert query["ganforge_ms"] > 0 and query["plain_sql_ms"] > 0
    assert "ix_jobs_created" in queries["list_every_user"]["indexes"]
    assert results["goal"]["no_seq_scans"], {n: q["seq_scans"] for n, q in queries.items()}


def test_streams_bench_admits_within_the_bounds_refuses_the_rest_and_frees_every_slot(
    tmp_path: Path, lab: Lab
) -> None:
    argv = ["--streams", "12", "--tokens", "3", "--duration", "1", "--clients", "2", "--rounds",
            "1", "--json", str(tmp_path / "bench-streams.json")]  # fmt: skip
    results = streams.main(argv, lab)
    _stamped(results, "streams")
    bounds = results["bounds"]
    (turn,) = results["turns"]
    # 3 tokens x 4 streams are all within their tokens' bound; the processes' is 2 x 4. How
    # the kernel spreads the 12 connections varies, but one process gets at least 6 of them.
    per_process, processes = bounds["streams_per_process"], bounds["api_processes"]
    assert (per_process, processes) == (4, 2)
    assert per_process <= turn["admitted"] <= per_process * processes
    assert turn["admitted"] + turn["refused_429"] == 12
    assert turn["other"] == turn["unanswered"] == 0
    assert turn["freed_s"] < streams.FREED_TIMEOUT_S
    for side in ("with", "without"):
        assert results["polls"][side]["requests"] > 0 and results["polls"][side]["errors"] == 0
    assert "another user's poll while 12 streams" in report.table(tmp_path)


def test_shard_cache_bench_fetches_every_byte_cold_and_none_warm(tmp_path: Path, lab: Lab) -> None:
    results = shard_cache.main(
        ["--images", "40", "--repeats", "1", "--json", str(tmp_path / "s.json")], lab
    )
    _stamped(results, "shard_cache")
    stored = results["dataset"]["bytes"]
    assert stored > 40 * 1000, "40 noise PNGs of ~12 KB and their index"
    assert results["copy"]["fetched_bytes"] == results["cold"]["fetched_bytes"] == stored
    assert results["warm"]["fetched_bytes"] == 0
    assert all(results[way]["median_ms"] > 0 for way in ("copy", "cold", "warm"))


def test_report_rewrites_only_the_table_between_the_markers(tmp_path: Path) -> None:
    machine = {"cpus": 2, "cpu_model": "Test CPU", "python": "3.11"}
    queue_results = {
        "bench": "queue",
        "date": "2026-11-30T12:00:00+00:00",
        "machine": machine,
        "samples": 3,
        "ganforge_to_running_ms": {"median": 60.0, "min": 50.0, "max": 70.0},
        "raw_celery_ms": {"median": 10.0, "min": 6.0, "max": 17.0},
        "extra_ms": 50.0,
        "goal": {"met": True},
    }
    (tmp_path / "bench-queue.json").write_text(json.dumps(queue_results))
    (tmp_path / "bench-other.json").write_text(json.dumps({"date": "2026-11-30"}))
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{report.BEGIN}\nold table\n{report.END}\nafter\n")
    report.main(["--results", str(tmp_path), "--readme", str(readme)])
    text = readme.read_text()
    assert text.startswith("before\n") and text.endswith(f"{report.END}\nafter\n")
    assert "old table" not in text
    assert "2 CPUs (Test CPU)" in text and "Measured 2026-11-30" in text
    assert "| 60 ms (50-70) | raw Celery send to task start: 10 ms (6-17) | +50 ms |" in text
    assert "see `bench-other.json`" in text
