"""Drives the soak over HTTP as the users would: keeps a bounded number of jobs outstanding,
submits the plan in order (a sampling job once its owner has a finished training job to
read), sends each planned cancel when its moment comes, and polls every outstanding job
until all of them are final."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from shared.states import TERMINAL
from tests.e2e.conftest import Service
from tests.soak.plan import PlannedJob, sample_spec, train_spec

FINAL = frozenset(state.value for state in TERMINAL)
# Jobs submitted and not yet final: three per worker, so every worker always has one running
# and the scheduler always has a queue to place from, without a backlog that only waits.
MAX_OUTSTANDING = 9
# Seconds between polls of the outstanding jobs (one GET each): a job lasts several seconds.
POLL_S = 1.0
HTTP_TIMEOUT_S = 60.0
# Sampling rounds of the warm-up before the soak goes on without every node warmed: a round
# places one job a node unless one finishes before the next is placed (a warm sample takes
# about a second), which a second round nearly always covers.
WARM_UP_ROUNDS = 4
# Extra warm-up jobs are numbered from here, apart from the plan's.
EXTRA_INDEX = 10_000


@dataclass
class Tracked:
    """One submitted job and what the soak saw of it."""

    planned: PlannedJob
    id: str
    submitted_at: float  # time.monotonic()
    source: str | None = None  # a sampling job's training job
    cancel_status: int | None = None  # the HTTP status of the cancel request, once sent
    state: str = "queued"
    final: dict[str, Any] = field(default_factory=dict)  # the job's JSON once final


class SoakDriver:
    def __init__(
        self,
        service: Service,
        users: list[requests.Session],
        *,
        seed: int,
    ) -> None:
        self.service, self.users = service, users
        self.rng = random.Random(seed)
        self.waiting: list[PlannedJob] = []
        self.outstanding: list[Tracked] = []
        self.done: list[Tracked] = []
        self.trained: dict[int, list[str]] = {}  # user -> their succeeded training jobs

    def run(self, plan: list[PlannedJob], deadline: float) -> list[Tracked]:
        """Submit `plan` and return when all of it is final (with every job run so far);
        fail past `deadline` (a time.monotonic())."""
        self.waiting = list(plan)
        while self.waiting or self.outstanding:
            if time.monotonic() > deadline:
                raise AssertionError(self._stall_report())
            self.service.processes.check_alive()
            self._submit_ready()
            self._cancel_due()
            self._poll()
            if self.outstanding:
                time.sleep(POLL_S)
        return self.done

    def warm_up(
        self,
        trains: list[PlannedJob],
        samples: list[PlannedJob],
        nodes: tuple[str, ...],
        deadline: float,
    ) -> set[str]:
        """Run `trains`, then rounds of sampling jobs until every node has run one (their
        owners: the users of `trains`); returns the nodes still not warmed (none, normally)."""
        self.run(trains, deadline)
        batch, extra = samples, EXTRA_INDEX
        for _ in range(WARM_UP_ROUNDS):
            self.run(batch, deadline)
            sampled = {self.node_of(job) for job in self.done if job.planned.kind == "sample"}
            missing = set(nodes) - sampled
            if not missing:
                break
            # One a node again: a lone job would go to the same first idle node every time.
            batch = []
            for user in range(len(nodes)):
                batch.append(PlannedJob(extra, trains[user % len(trains)].user, "sample", None))
                extra += 1
        return missing

    def node_of(self, job: Tracked) -> str | None:
        """The node the job started on, from its events ("started on <node>")."""
        answer = self.users[job.planned.user].get(
            self.service.url(f"/api/v1/jobs/{job.id}/events"), timeout=HTTP_TIMEOUT_S
        )
        assert answer.status_code == 200, answer.text
        for event in answer.json()["events"]:
            if event["to"] == "running":
                return str(event["reason"]).removeprefix("started on ").split(" ")[0]
        return None

    def _submit_ready(self) -> None:
        for planned in list(self.waiting):
            if len(self.outstanding) >= MAX_OUTSTANDING:
                return
            sources = self.trained.get(planned.user, [])
            if planned.kind == "sample" and not sources:
                continue  # its owner's first training job has not finished yet
            source = self.rng.choice(sources) if planned.kind == "sample" else None
            spec = sample_spec(source) if source else train_spec(planned)
            body: dict[str, Any] = {"kind": planned.kind, "name": planned.name, "spec": spec}
            answer = self.users[planned.user].post(
                self.service.url("/api/v1/jobs"), json=body, timeout=HTTP_TIMEOUT_S
            )
            assert answer.status_code == 201, f"{planned}: {answer.status_code} {answer.text}"
            self.waiting.remove(planned)
            self.outstanding.append(
                Tracked(planned, answer.json()["id"], time.monotonic(), source=source)
            )

    def _cancel_due(self) -> None:
        now = time.monotonic()
        for job in self.outstanding:
            delay = job.planned.cancel_after_s
            if delay is None or job.cancel_status is not None or now < job.submitted_at + delay:
                continue
            answer = self.users[job.planned.user].post(
                self.service.url(f"/api/v1/jobs/{job.id}/cancel"), timeout=HTTP_TIMEOUT_S
            )
            # 202: cancelled or being stopped; 409: it had finished first.
            assert answer.status_code in (202, 409), f"cancel {job.id}: {answer.text}"
            job.cancel_status = answer.status_code

    def _poll(self) -> None:
        for job in list(self.outstanding):
            answer = self.users[job.planned.user].get(
                self.service.url(f"/api/v1/jobs/{job.id}"), timeout=HTTP_TIMEOUT_S
            )
            assert answer.status_code == 200, f"{job.id}: {answer.text}"
            body = answer.json()
            job.state = body["state"]
            if job.state not in FINAL:
                continue
            pending_cancel = job.planned.cancel_after_s is not None and job.cancel_status is None
            if pending_cancel:
                continue  # keep it until its cancel is sent: a cancel of a final job is a case
            job.final = body
            self.outstanding.remove(job)
            self.done.append(job)
            if job.planned.kind == "train" and job.state == "succeeded":
                self.trained.setdefault(job.planned.user, []).append(job.id)

    def _stall_report(self) -> str:
        stuck = [(job.id, job.planned.name, job.state) for job in self.outstanding]
        return (
            f"the soak did not drain in time: {len(self.done)} final, "
            f"{len(self.waiting)} never submitted, outstanding {stuck}\n"
            f"pool: {self.service.pool()}\n{self.service.worker_log()[-4000:]}"
        )
