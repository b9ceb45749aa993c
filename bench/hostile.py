"""A battery of hostile requests against the real API, each with what holding means.

    python -m bench.hostile [--json bench-hostile.json] [--no-worker] [--job-wait 150]

Starts PostgreSQL, Redis and moto S3 (bench/lab.py, as the other benchmarks do), the API under
gunicorn as the service runs it (cli/embedded.py), a scheduler and one worker, and sends a
few hundred requests built to hurt: patterns that backtrack, the known 500s, archives that
lie, paths out of the data root, tokens that are missing or someone else's, headers and
methods no client should send, and a flood of event streams from one token
(bench/hostile_cases.py, hostile_streams.py, hostile_worker.py).

A case holds when, within its time bound (2 s unless it says), the answer is the one expected
(a refusal: 4xx application/problem+json with a title and a detail naming the field), the
API still answers GET /healthz within 1 s right after, and a refused write left nothing
behind: the jobs (by state and priority), datasets, shared datasets, live tokens,
idempotency keys and quotas in the database, and the objects under the store's uploads/, the
same before and after. Prints held/total per category and every case that failed with what
it got, and writes the JSON.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update

from bench import hostile_access, hostile_data, hostile_input
from bench import hostile_cases as cases
from bench import hostile_files as files
from bench.hostile_cases import Case, Outcome, Target
from bench.hostile_http import judge
from bench.hostile_memory import ApiMemory
from bench.hostile_streams import run_streams
from bench.hostile_worker import LANE, linked_job_outcome, submit_linked_job
from bench.lab import Lab, bench_token, given_or_own_lab, lab_settings, write_json
from cli.embedded import ServiceProcesses
from shared.config import Settings
from shared.db import session_scope
from shared.models import (
    ApiToken,
    CodeArchive,
    CodeBundle,
    Dataset,
    IdempotencyKey,
    Job,
    User,
    utcnow,
)
from shared.storage import Storage, open_storage

# /healthz must answer this fast right after each case.
HEALTH_S = 1.0
# When it does not, how long to wait for the API to come back before restarting it (a
# gunicorn worker wedged in C code is replaced after its 30 s timeout).
RECOVERY_S = 40.0
DEFAULT_JOB_WAIT_S = 150.0


def stored(settings: Settings, store: Storage, ignore_job: str | None) -> dict[str, Any]:
    """What a refused write must not change. `ignore_job`: the one job the worker runs."""
    with session_scope(settings.database_url) as session:
        jobs = session.execute(
            select(Job.state, func.count(), func.sum(Job.priority))
            .where(Job.id != (ignore_job or ""))
            .group_by(Job.state)
            .order_by(Job.state)
        ).all()
        return {
            "jobs by state": {state: count for state, count, _ in jobs},
            "sum of job priorities": sum(total or 0 for _, _, total in jobs),
            "datasets": session.scalar(select(func.count()).select_from(Dataset)),
            "shared datasets": session.scalar(
                select(func.count()).select_from(Dataset).where(Dataset.shared.is_(True))
            ),
            "live tokens": session.scalar(
                select(func.count()).select_from(ApiToken).where(ApiToken.revoked_at.is_(None))
            ),
            "idempotency keys": session.scalar(select(func.count()).select_from(IdempotencyKey)),
            "quotas": sorted(
                (name, devices or -1, queued or -1)
                for name, devices, queued in session.execute(
                    select(User.name, User.max_devices, User.max_queued_jobs)
                )
            ),
            "objects under uploads/": len(store.list("uploads/")),
            "code bundles": session.scalar(select(func.count()).select_from(CodeBundle)),
            "shared code": session.scalar(
                select(func.count()).select_from(CodeArchive).where(CodeArchive.shared.is_(True))
            ),
            "objects under code/": len(store.list("code/")),
        }


def _changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [
        f"stored: {key} {before[key]} -> {after[key]}"
        for key in before
        if before[key] != after[key]
    ]


class Battery:
    """Runs cases one after another against the API, judging each and checking the API's
    health and the stored state around it."""

    def __init__(self, target: Target, processes: ServiceProcesses, settings: Settings) -> None:
        self.target, self.processes, self.settings = target, processes, settings
        self.store = open_storage(settings)
        self.ignore_job: str | None = None
        self.outcomes: list[Outcome] = []
        self.recoveries: list[dict[str, Any]] = []
        self._too_slow: dict[str, str] = {}

    def run(self, batch: list[Case]) -> None:
        for case in batch:
            self.outcomes.append(self._run_one(case))
            show(self.outcomes[-1])

    def _run_one(self, case: Case) -> Outcome:
        if case.series in self._too_slow:
            reason = f"not sent: {self._too_slow[case.series]}; a larger one holds a process longer"
            return Outcome(case.category, case.name, False, [reason], "(not sent)", 0.0)
        if case.setup is not None:
            case.setup(self.target)
        before = self._stored() if case.expect.write else None
        answer = case.send(self.target)
        reasons = judge(answer, case.expect)
        if case.check is not None and answer.error is None:
            extra = case.check(answer)
            reasons += [extra] if extra else []
        refused = answer.status is None or answer.status >= 400
        if before is not None and refused:
            reasons += _changes(before, self._stored())
        if case.series and (answer.error or answer.seconds > case.expect.bound_s):
            self._too_slow[case.series] = f"{case.name} took {answer.seconds:.1f} s"
        reasons += self._health()
        got = answer.summary()
        return Outcome(
            case.category, case.name, not reasons, reasons, got, answer.seconds, answer.notes
        )

    def _stored(self) -> dict[str, Any]:
        return stored(self.settings, self.store, self.ignore_job)

    def _health(self) -> list[str]:
        """Empty when /healthz answered within HEALTH_S; else why, after waiting for the API
        to come back (restarting it when it does not)."""
        probe = self.target.request("GET", "/healthz", user=None, timeout=HEALTH_S)
        if probe.status == 200 and probe.seconds <= HEALTH_S:
            return []
        began = time.perf_counter()
        while time.perf_counter() - began < RECOVERY_S:
            again = self.target.request("GET", "/healthz", user=None, timeout=HEALTH_S)
            if again.status == 200:
                waited = time.perf_counter() - began
                self.recoveries.append(
                    {
                        "after": self.outcomes[-1:] and self.outcomes[-1].name,
                        "seconds": round(waited, 1),
                    }
                )
                return [
                    f"/healthz after it: {probe.summary()}; answered again {waited:.1f} s later"
                ]
            time.sleep(0.5)
        self.processes.stop(("api",))
        self.processes.start(("api",))
        self.processes.wait_ready()
        self.recoveries.append({"seconds": None, "restarted": True})
        return [f"/healthz after it: {probe.summary()}; not back in {RECOVERY_S:g} s, restarted"]


def show(outcome: Outcome) -> None:
    mark = "held" if outcome.held else "FAIL"
    print(f"  {mark}  {outcome.category}: {outcome.name[:90]}", flush=True)


def _prepare(target: Target, settings: Settings) -> None:
    """Alice's objects the battery aims at: a job that never runs (its labels fit no node),
    a dataset, a token, and an expired and a revoked token of hers."""
    parked = cases.train_body({"source": "toy:ring8"}, resources={"labels": cases.PARKED})
    job = target.request("POST", cases.JOBS, json_body=parked, keep=True)
    npz = cases.upload("points.npz", files.small_npz())(target)
    code_body, code_headers = cases.multipart({}, (b"pkg.zip", files.zip_of({"pkg.py": b"x=1\n"})))
    code = target.request("POST", cases.CODE, body=code_body, headers=code_headers)
    expired = target.request("POST", cases.TOKENS, json_body={"name": "expired"}).json()
    revoked = target.request("POST", cases.TOKENS, json_body={"name": "revoked"}).json()
    token = target.request("POST", cases.TOKENS, json_body={"name": "target"}).json()
    for answer in (job, npz, code):
        if answer.status != 201:
            raise RuntimeError(f"setting up the battery: {answer.summary()}")
    target.request("DELETE", f"{cases.TOKENS}/{revoked['id']}")
    with session_scope(settings.database_url) as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.id == expired["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    target.ids.update(
        job=job.json()["id"], dataset=npz.json()["id"], token=token["id"], code=code.json()["id"]
    )
    target.tokens.update({"alice-expired": expired["token"], "alice-revoked": revoked["token"]})


@contextmanager
def _service(settings: Settings, logs: Path) -> Iterator[ServiceProcesses]:
    with ServiceProcesses(settings, logs) as processes:
        processes.start(("api",))
        processes.wait_ready()
        yield processes


def measure(
    lab: Lab | None = None, worker: bool = True, job_wait_s: float = DEFAULT_JOB_WAIT_S
) -> dict[str, Any]:
    """Start everything, run every category, and return the figures."""
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ganforge-bench-hostile-") as scratch:
        home = Path(scratch)
        root, outside = home / "data-root", home / "outside"
        linked = files.linked_image_folder(root, outside)
        with (
            given_or_own_lab(lab) as lab,
            lab_settings(lab, home, GANFORGE_DATA_ROOTS=str(root)) as settings,
            _service(settings, home / "logs") as processes,
        ):
            tokens = {name: bench_token(settings, name) for name in ("alice", "bob")}
            memory = ApiMemory(processes.processes["api"].pid)
            target = Target(settings.api_url, tokens, {}, root, outside, memory)
            _prepare(target, settings)
            # Submitted before the worker's node registers: the parked job stays admissible.
            linked_job = submit_linked_job(target, linked)
            battery = Battery(target, processes, settings)
            battery.ignore_job = (linked_job.json() or {}).get("id")
            if worker:
                processes.start(("scheduler",))
                lane = ",".join(f"{name}={value}" for name, value in LANE.items())
                processes.start_worker("hostile", 1, node_labels=lane, warm_sampler=False)
            document = target.request("GET", "/api/v1/openapi.json", user=None).json()
            started = time.perf_counter()
            for build in _CATEGORIES:
                battery.run(build(target))
            battery.run(hostile_access.auth(target, hostile_access.operations(document, target)))
            battery.outcomes.append(
                linked_job_outcome(target, linked_job, job_wait_s if worker else None)
            )
            show(battery.outcomes[-1])
            streams, stream_figures = run_streams(target)
            for outcome in streams:
                show(outcome)
            battery.outcomes += streams
            seconds = time.perf_counter() - started
    return _results(battery, stream_figures, seconds, time.perf_counter() - began)


_CATEGORIES: tuple[Callable[[Target], list[Case]], ...] = (
    cases.controls,
    hostile_input.regex,
    hostile_input.known_500s,
    hostile_data.lying_archives,
    hostile_data.path_confinement,
    hostile_access.headers_methods,
)


def _results(
    battery: Battery, streams: dict[str, Any], seconds: float, total_s: float
) -> dict[str, Any]:
    held, total = Counter[str](), Counter[str]()
    for outcome in battery.outcomes:
        total[outcome.category] += 1
        held[outcome.category] += outcome.held
    return {
        "categories": {name: {"held": held[name], "total": total[name]} for name in total},
        "held": sum(held.values()),
        "total": sum(total.values()),
        "battery_seconds": round(seconds, 1),
        "run_seconds": round(total_s, 1),
        "recoveries": battery.recoveries,
        "streams": streams,
        "failed": [_outcome_json(o) for o in battery.outcomes if not o.held],
        "cases": [_outcome_json(o) for o in battery.outcomes],
    }


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "category": outcome.category,
        "name": outcome.name,
        "held": outcome.held,
        "reasons": outcome.reasons,
        "got": outcome.got,
        "seconds": round(outcome.seconds, 3),
        **({"notes": outcome.notes} if outcome.notes else {}),
    }


def print_report(results: dict[str, Any]) -> None:
    print(f"\n{'category':28s} held/total")
    for name, figures in results["categories"].items():
        print(f"{name:28s} {figures['held']:4d}/{figures['total']}")
    print(f"{'all':28s} {results['held']:4d}/{results['total']}")
    print(f"battery {results['battery_seconds']} s, whole run {results['run_seconds']} s")
    if results["failed"]:
        print("\nfailed:")
    for case in results["failed"]:
        print(f"- [{case['category']}] {case['name']}")
        print(f"    got: {case['got'][:200]}")
        for reason in case["reasons"]:
            print(f"    - {reason[:200]}")


def main(argv: list[str] | None = None, lab: Lab | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=Path("bench-hostile.json"))
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="no scheduler or worker: the linked-folder job is judged at submission",
    )
    parser.add_argument(
        "--job-wait",
        type=float,
        default=DEFAULT_JOB_WAIT_S,
        help="seconds to wait for the linked-folder job to end",
    )
    args = parser.parse_args(argv)
    results = measure(lab, worker=not args.no_worker, job_wait_s=args.job_wait)
    print_report(results)
    return write_json(args.json, "hostile", results)


if __name__ == "__main__":
    main()
