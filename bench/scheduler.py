"""The placement policy's cost: 1,000 queued jobs on 100 simulated nodes, in one process.

    python -m bench.scheduler [--jobs 1000] [--nodes 100] [--repeats 20]

Times `shared.scheduler.policy.plan` (priority, fair share between users, quotas, best-fit
gangs, backfill holds) against a plain first-come first-fit loop over the same jobs and nodes
(no fairness, no quotas), alternated R times so a noisy neighbour hurts both alike; prints the
median milliseconds of each and their ratio. The goal is under 100 ms for the policy.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import datetime, timedelta, timezone

from shared.scheduler.policy import NodeView, QueuedJob, plan


def make_pool(jobs: int, nodes: int, seed: int = 0) -> tuple[list[QueuedJob], list[NodeView]]:
    rng = random.Random(seed)
    start = datetime(2026, 11, 30, tzinfo=timezone.utc)
    queue = [
        QueuedJob(
            id=f"job-{i}",
            owner=f"user-{rng.randrange(20)}",
            devices=rng.choice((1, 1, 1, 2, 4, 8)),
            created_at=start + timedelta(seconds=i),
            priority=rng.choice((0, 0, 0, 1)),
            kind=rng.choice(("train", "train", "sample")),
        )
        for i in range(jobs)
    ]
    pool = [
        NodeView(
            name=f"node-{n:03d}",
            kind="gpu",
            total=8,
            free=tuple(rng.sample(range(8), rng.randrange(9))),
        )
        for n in range(nodes)
    ]
    return queue, pool


def first_fit(queue: list[QueuedJob], nodes: list[NodeView]) -> int:
    """The plain baseline: oldest first, first node with room, nothing else."""
    free = {node.name: len(node.free) for node in nodes}
    placed = 0
    for job in sorted(queue, key=lambda j: j.created_at):
        for name, count in free.items():
            if count >= job.devices:
                free[name] = count - job.devices
                placed += 1
                break
    return placed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    queue, nodes = make_pool(args.jobs, args.nodes)
    usage = {f"user-{u}": float(u * 1000) for u in range(20)}
    policy_ms, plain_ms = [], []
    for _ in range(args.repeats):
        began = time.perf_counter()
        decided = plan(queue, nodes, usage=usage, quotas={"user-3": 4})
        policy_ms.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        first_fit(queue, nodes)
        plain_ms.append((time.perf_counter() - began) * 1000)
    policy, plain = statistics.median(policy_ms), statistics.median(plain_ms)
    print(f"{args.jobs} jobs on {args.nodes} nodes of 8 devices, {args.repeats} repeats")
    print(f"  placed {len(decided.placements)}, waiting {len(decided.waiting)}")
    print(f"  policy      {policy:8.2f} ms (min {min(policy_ms):.2f}, max {max(policy_ms):.2f})")
    print(f"  first fit   {plain:8.2f} ms (min {min(plain_ms):.2f}, max {max(plain_ms):.2f})")
    print(f"  policy / first fit: {policy / plain:.1f}x")


if __name__ == "__main__":
    main()
