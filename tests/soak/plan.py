"""What the soak submits: a fixed, seeded list of small jobs from a few users, some of them
sampling jobs on their owner's finished training jobs, some cancelled a random while after
submission (queued, scheduled, running or already finished: whichever it hits)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

from tests.helpers import RING_SPEC, with_steps

# One seed for the whole plan: a failing soak reruns the same jobs and cancellations.
PLAN_SEED = 13
# A quarter sampling jobs: enough that every worker runs several, while most of the load is
# training, as in the lab.
SAMPLE_SHARE = 0.25
# About one job in five is cancelled, at a moment drawn from [0, CANCEL_WITHIN_S) seconds
# after its submission: long enough to hit jobs in every state (a tiny job runs a few s).
CANCEL_SHARE = 0.2
CANCEL_WITHIN_S = 8.0
# Tiny training: a handful of steps on toy 2-D data, one checkpoint and grid at the end, so
# most of a job's time is the service's own machinery (placement, processes, uploads).
TRAIN_STEPS = 10
SAMPLE_SEEDS = [1, 2, 3, 4]

Kind = Literal["train", "sample"]


@dataclass(frozen=True)
class PlannedJob:
    index: int
    user: int
    kind: Kind
    # Seconds after submission to ask for a cancel; None: never cancelled.
    cancel_after_s: float | None

    @property
    def name(self) -> str:
        return f"soak-{self.index:04d}-{self.kind}"


def make_plan(count: int, users: int, workers: int, seed: int = PLAN_SEED) -> list[PlannedJob]:
    """`count` jobs, starting with the warm-up (2 x `workers` jobs: the first `workers` users
    train once, all at once, then sample once each, one sampling job a worker), then jobs round
    the `users` drawn at random. A user's first job trains and no warm-up job is cancelled, so
    every sampling job has a finished training job of its owner to read."""
    rng = random.Random(seed)
    warm_up: list[tuple[Kind, int]] = [("train", user) for user in range(workers)]
    warm_up += [("sample", user) for user in range(workers)]
    plan = [PlannedJob(i, user, kind, None) for i, (kind, user) in enumerate(warm_up)]
    trained = set(range(workers))
    for index in range(len(plan), count):
        user = (index - len(warm_up)) % users
        kind: Kind = "sample" if rng.random() < SAMPLE_SHARE else "train"
        cancel = rng.random() < CANCEL_SHARE
        delay = rng.uniform(0.0, CANCEL_WITHIN_S) if cancel else None
        if user not in trained:
            kind, delay = "train", None
            trained.add(user)
        plan.append(PlannedJob(index, user, kind, delay))
    return plan[:count]


def train_spec(job: PlannedJob) -> dict[str, Any]:
    return with_steps(RING_SPEC, TRAIN_STEPS, batch_size=64, seed=job.index)


def sample_spec(source_job_id: str) -> dict[str, Any]:
    return {"job_id": source_job_id, "step": None, "seeds": SAMPLE_SEEDS}
