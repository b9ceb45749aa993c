"""The scheduler's cost: 1,000 queued jobs on 100 simulated nodes.

    python -m bench.scheduler [--jobs 1000] [--nodes 100] [--repeats 20] [--passes 5]

1. The policy: times `shared.pool.policy.plan` (priority, fair share between users,
   quotas, best-fit gangs, backfill holds) against a plain first-come first-fit loop over the
   same jobs and nodes (no fairness, no quotas), alternated R times so a noisy neighbour hurts
   both alike; prints the median milliseconds of each and their ratio. Goal: under 100 ms.
2. A whole pass on PostgreSQL and Redis (started for the run, throwaway, as the tests do): the
   same pool as rows (nodes, busy devices as reservations, queued jobs of 20 users), then
   `schedule_once` (read the pool, plan, reserve and send each placement, write every waiting
   job's reason) P times on fresh copies, against the bare floor of that pass: reading the
   same rows with plain SELECTs. Goal: under 1 s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench.lab import write_json
from shared.pool.plan_values import NodeView, QueuedJob
from shared.pool.policy import plan


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


def whole_pass(queue: list[QueuedJob], nodes: list[NodeView], passes: int) -> dict[str, float]:
    """Time `schedule_once` on PostgreSQL + Redis against plain reads of the same rows."""
    from sqlalchemy import text

    from scheduler.process import schedule_once
    from shared.config import Settings
    from shared.db import get_engine, session_scope
    from shared.messaging import make_celery
    from shared.migrate import upgrade
    from shared.models import Job, Node, Reservation, User
    from tests.servers import postgres_server, redis_server
    from tests.services import fresh_database

    with postgres_server() as postgres, redis_server() as redis_service:
        pass_ms, read_ms = [], []
        for _ in range(passes):
            with fresh_database(postgres.url) as url:
                upgrade(url)
                settings = Settings.from_env(
                    {
                        "GANFORGE_DATABASE_URL": url,
                        "GANFORGE_BROKER_URL": redis_service.url,
                        "GANFORGE_HOME": "/tmp/ganforge-bench",
                    }
                )
                with session_scope(url) as session:
                    owners = sorted({job.owner for job in queue})
                    session.add_all(User(id=f"u{i:03d}", name=o) for i, o in enumerate(owners))
                    user_id = {o: f"u{i:03d}" for i, o in enumerate(owners)}
                    session.add_all(
                        Node(
                            name=n.name,
                            state="up",
                            queue=f"bench.node.{n.name}",
                            boot_id="b",
                            devices=[{"index": i, "kind": "gpu"} for i in range(n.total)],
                        )
                        for n in nodes
                    )
                    session.flush()
                    busy = Job(id="busy", owner_id=user_id[owners[0]], kind="train", name="b",
                               spec={}, state="running", attempt=1, max_attempts=3)  # fmt: skip
                    session.add(busy)
                    session.flush()
                    session.add_all(
                        Reservation(node_name=n.name, device_index=i, job_id="busy", attempt=1)
                        for n in nodes
                        for i in range(n.total)
                        if i not in n.free
                    )
                    session.add_all(
                        Job(
                            id=job.id,
                            owner_id=user_id[job.owner],
                            kind=job.kind,
                            name=job.id,
                            spec={"resources": {"devices": job.devices}},
                            state="queued",
                            attempt=1,
                            max_attempts=3,
                            devices=job.devices,
                            priority=job.priority,
                            created_at=job.created_at,
                        )
                        for job in queue
                    )
                celery = make_celery(settings)
                began = time.perf_counter()
                with get_engine(url).connect() as connection:
                    for table in ("jobs", "nodes", "reservations", "users"):
                        connection.execute(text(f"SELECT * FROM {table}")).all()
                read_ms.append((time.perf_counter() - began) * 1000)
                began = time.perf_counter()
                sent = schedule_once(settings, celery)
                pass_ms.append((time.perf_counter() - began) * 1000)
                get_engine(url).dispose()
    full, floor = statistics.median(pass_ms), statistics.median(read_ms)
    print(f"whole pass on PostgreSQL + Redis, {passes} fresh copies, {sent} jobs sent per pass")
    print(f"  schedule_once {full:8.1f} ms (min {min(pass_ms):.1f}, max {max(pass_ms):.1f})")
    print(f"  plain reads   {floor:8.1f} ms (min {min(read_ms):.1f}, max {max(read_ms):.1f})")
    print(f"  pass / plain reads: {full / floor:.1f}x")
    return {"pass_ms": round(full, 1), "plain_reads_ms": round(floor, 1), "sent": sent,
            "passes": passes}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--passes", type=int, default=5, help="0 skips the PostgreSQL pass")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
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
    results: dict[str, object] = {
        "jobs": args.jobs,
        "nodes": args.nodes,
        "policy_ms": round(policy, 2),
        "first_fit_ms": round(plain, 2),
        "placed": len(decided.placements),
    }
    if args.passes:
        results["whole_pass"] = whole_pass(queue, nodes, args.passes)
    write_json(args.json, "scheduler", results)


if __name__ == "__main__":
    main()
