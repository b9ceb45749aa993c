"""The placement policy: queued jobs + nodes + usage → placements and reasons. Pure: no database,
no clock, so tests and `bench/scheduler` call it directly.

Order. Jobs are taken by priority (higher first), then sampling before training (the short
lane: a sampling job takes one device for seconds, so it never waits behind hour-long runs of
the same priority), then the user furthest below their fair share, then age. Every user with
work has an equal share, so "furthest below" is the smallest recent usage in device-seconds
(decayed by a half-life, computed by the caller); devices a user holds now, or was given
earlier in this pass, break ties, so one pass hands devices out round-robin between users.

Placement. A job takes `devices` devices on one node that is up, has every label it asks for,
and has the device kind it asks for (cuda: GPUs; cpu: CPU slots; auto: either). Among the nodes
that can take it now it picks the one with the fewest free devices that suffice (best fit), so
large holes stay for large jobs. A gang of `nodes` > 1 takes devices/nodes devices on each of
that many distinct nodes, all at once or not at all, again best fit.

Waiting. A job that cannot start gets a reason and keeps its place. A job over its owner's
device quota, or one that no node could ever hold, does not block anyone. A job that waits for
devices holds the free devices of the node it will start on (the eligible node with the most
free devices) against every job after it: this is the backfill guarantee. Smaller jobs may
start around a waiting larger one, but only on devices it is not waiting for, so backfill never
delays it (without runtime estimates, it cannot promise more).

Preemption. A job waiting for devices may take them from running jobs marked `preemptible`
with a lower priority: on the node where the fewest such devices make room, the lowest
priority victims are asked to checkpoint and stop; the waiting job holds that
node's free devices meanwhile. Victims already stopping count once, for one waiting job.
"""

from __future__ import annotations

import heapq
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from shared.specs import SHORT_KINDS

# Queue lanes, in the order they are served within one priority.
SHORT_LANE, LONG_LANE = 0, 1


@dataclass(frozen=True)
class QueuedJob:
    id: str
    owner: str
    devices: int
    created_at: datetime
    priority: int = 0
    kind: str = "train"
    device_type: str = "auto"
    labels: Mapping[str, str] = field(default_factory=dict)
    nodes: int = 1

    @property
    def per_node(self) -> int:
        """Devices the job takes on each of its nodes."""
        return self.devices // self.nodes

    @property
    def lane(self) -> int:
        return SHORT_LANE if self.kind in SHORT_KINDS else LONG_LANE


@dataclass(frozen=True)
class NodeView:
    """A node as the policy sees it: its free device indexes now."""

    name: str
    kind: str  # gpu | cpu
    total: int
    free: tuple[int, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    # False for a draining or dead node: it takes no new jobs.
    accepting: bool = True
    # True while the node is backed off for leaving a job it was sent unclaimed
    # (scheduler.backoff.NodeBackoff): it is placed on only when no other node fits.
    shunned: bool = False


@dataclass(frozen=True)
class RunningJob:
    """A job holding devices, as preemption sees it."""

    id: str
    node: str
    devices: int
    priority: int = 0
    preemptible: bool = False
    # Already asked to give its devices back.
    stopping: bool = False


@dataclass(frozen=True)
class Preemption:
    job_id: str
    reason: str


@dataclass(frozen=True)
class Placement:
    """Where a job starts: (node, device indexes) per node, the rendezvous node first."""

    job_id: str
    parts: tuple[tuple[str, tuple[int, ...]], ...]

    @property
    def node(self) -> str:
        return self.parts[0][0]

    @property
    def devices(self) -> tuple[int, ...]:
        return self.parts[0][1]


@dataclass(frozen=True)
class Waiting:
    position: int
    reason: str


@dataclass
class Plan:
    placements: list[Placement] = field(default_factory=list)
    waiting: dict[str, Waiting] = field(default_factory=dict)
    preemptions: list[Preemption] = field(default_factory=list)


def plan(
    queue: Iterable[QueuedJob],
    nodes: Iterable[NodeView],
    *,
    usage: Mapping[str, float] | None = None,
    held: Mapping[str, int] | None = None,
    quotas: Mapping[str, int | None] | None = None,
    running: Iterable[RunningJob] = (),
) -> Plan:
    """Decide which queued jobs start now and where, which running jobs must make room, and
    why the others wait.

    `usage`: each owner's recent device-seconds; `held`: devices each owner holds now;
    `quotas`: each owner's most concurrent devices (None or absent: no limit); `running`: the
    jobs holding devices, for preemption.
    """
    usage, quotas = usage or {}, quotas or {}
    holding: dict[str, int] = defaultdict(int, held or {})
    nodes = list(nodes)
    free = {node.name: sorted(node.free) for node in nodes if node.accepting}
    result = Plan()
    victims = [job for job in running if job.preemptible or job.stopping]
    # Jobs asking for the same kind and labels see the same nodes: found once per kind.
    eligible: dict[tuple[str, frozenset[tuple[str, str]]], list[NodeView]] = {}
    ahead = 0
    for job in _fair_order(queue, usage, holding):
        kind = (job.device_type, frozenset(job.labels.items()))
        if kind not in eligible:
            eligible[kind] = [n for n in nodes if _qualifies(n, job)]
        candidates = eligible[kind]
        reason = _refusal(job, candidates, holding, quotas)
        if reason is None:
            per_node = job.per_node
            fitting = [n for n in candidates if len(free.get(n.name, ())) >= per_node]
            if len(fitting) >= job.nodes:
                chosen = sorted(fitting, key=lambda n: (n.shunned, len(free[n.name]), n.name))
                chosen = chosen[: job.nodes]
                parts = []
                for node in chosen:
                    taken = tuple(free[node.name][:per_node])
                    free[node.name] = free[node.name][per_node:]
                    parts.append((node.name, taken))
                holding[job.owner] += job.devices
                result.placements.append(Placement(job.id, tuple(parts)))
                continue
            preempting = _preempt_for(job, candidates, free, victims, result)
            reason = preempting or _hold_devices_for(job, candidates, free, ahead)
        ahead += 1
        result.waiting[job.id] = Waiting(position=ahead, reason=reason)
    return result


def _fair_order(
    queue: Iterable[QueuedJob], usage: Mapping[str, float], holding: Mapping[str, int]
) -> Iterable[QueuedJob]:
    """Jobs in service order. Each owner's jobs stay in their own order; between owners, the
    next job comes from the owner whose head job ranks first (see the module docstring).
    `holding` is read at each step, so devices given out earlier in the pass count."""
    per_owner: dict[str, deque[QueuedJob]] = defaultdict(deque)
    for job in sorted(queue, key=lambda j: (-j.priority, j.lane, j.created_at, j.id)):
        per_owner[job.owner].append(job)

    def key(owner: str) -> tuple[object, ...]:
        head = per_owner[owner][0]
        share = (usage.get(owner, 0.0), holding.get(owner, 0))
        return (-head.priority, head.lane, share, head.created_at, head.id)

    heap = [(key(owner), owner) for owner in per_owner]
    heapq.heapify(heap)
    while heap:
        _, owner = heapq.heappop(heap)
        yield per_owner[owner].popleft()
        if per_owner[owner]:
            heapq.heappush(heap, (key(owner), owner))


def _qualifies(node: NodeView, job: QueuedJob) -> bool:
    if job.device_type == "cuda" and node.kind != "gpu":
        return False
    if job.device_type == "cpu" and node.kind != "cpu":
        return False
    return all(node.labels.get(name) == value for name, value in job.labels.items())


def describe_need(job: QueuedJob) -> str:
    """'2 devices (gpu) with gpu=a100', as a person would say what the job waits for."""
    kind = {"cuda": " (gpu)", "cpu": " (cpu slots)"}.get(job.device_type, "")
    labels = ",".join(f"{k}={v}" for k, v in sorted(job.labels.items()))
    noun = "device" if job.devices == 1 else "devices"
    spread = f" on {job.nodes} nodes" if job.nodes > 1 else ""
    return f"{job.devices} {noun}{kind}{spread}" + (f" with {labels}" if labels else "")


def never_fits(job: QueuedJob, nodes: Iterable[NodeView]) -> str | None:
    """Why no node of the pool could ever hold the job, or None when one could."""
    candidates = [n for n in nodes if _qualifies(n, job)]
    if not candidates:
        return f"no node in the pool offers {describe_need(job)}"
    if job.nodes > 1:
        big_enough = sum(n.total >= job.per_node for n in candidates)
        if big_enough < job.nodes:
            return (
                f"asks for {describe_need(job)}; {big_enough} node(s) have "
                f"{job.per_node} such devices"
            )
        return None
    largest = max(n.total for n in candidates)
    if largest < job.devices:
        return f"asks for {describe_need(job)}; the largest fitting node has {largest}"
    return None


def _refusal(
    job: QueuedJob,
    candidates: list[NodeView],
    holding: Mapping[str, int],
    quotas: Mapping[str, int | None],
) -> str | None:
    """A reason the job cannot start that does not hold anyone else up, or None."""
    quota = quotas.get(job.owner)
    if quota is not None and holding.get(job.owner, 0) + job.devices > quota:
        return f"over your quota of {quota} devices (holding {holding.get(job.owner, 0)})"
    if not candidates:
        return f"no node offers {describe_need(job)}"
    if sum(n.total >= job.per_node for n in candidates) < job.nodes:
        return (
            f"no node has {describe_need(job)}"
            if job.nodes == 1
            else (f"fewer than {job.nodes} nodes have {job.per_node} devices each")
        )
    if sum(n.accepting and n.total >= job.per_node for n in candidates) < job.nodes:
        return (
            f"every node with {describe_need(job)} is draining or down"
            if job.nodes == 1
            else (f"fewer than {job.nodes} nodes with {job.per_node} devices each are up")
        )
    return None


def _hold_devices_for(
    job: QueuedJob, candidates: list[NodeView], free: dict[str, list[int]], ahead: int
) -> str:
    """Keep the free devices of the job's future nodes from the jobs after it; say why it waits."""
    open_nodes = [n for n in candidates if n.name in free and n.total >= job.per_node]
    for target in sorted(open_nodes, key=lambda n: (-len(free[n.name]), n.name))[: job.nodes]:
        free[target.name] = []
    jobs_ahead = f"; {ahead} job{'s' if ahead != 1 else ''} ahead" if ahead else ""
    return f"waiting for {describe_need(job)} to free up{jobs_ahead}"


def _preempt_for(
    job: QueuedJob,
    candidates: list[NodeView],
    free: dict[str, list[int]],
    victims: list[RunningJob],
    result: Plan,
) -> str | None:
    """Make room for `job` by stopping lower-priority preemptible jobs; None if none can.
    (Single-node jobs only: a gang waits for its devices to free up.)"""
    if job.nodes > 1 or not any(v.priority < job.priority for v in victims):
        return None
    best: tuple[int, str, list[RunningJob]] | None = None
    for node in candidates:
        if node.name not in free or node.total < job.devices:
            continue
        missing = job.devices - len(free[node.name])
        chosen: list[RunningJob] = []
        # Jobs already stopping cost nothing; then the lowest priority goes first.
        for victim in sorted(
            (v for v in victims if v.node == node.name and v.priority < job.priority),
            key=lambda v: (not v.stopping, v.priority),
        ):
            if missing <= 0:
                break
            chosen.append(victim)
            missing -= victim.devices
        if missing > 0 or not chosen:
            continue
        cost = sum(v.devices for v in chosen if not v.stopping)
        if best is None or (cost, node.name) < (best[0], best[1]):
            best = (cost, node.name, chosen)
    if best is None:
        return None
    _, node_name, chosen = best
    free[node_name] = []
    for victim in chosen:
        victims.remove(victim)
        if not victim.stopping:
            result.preemptions.append(
                Preemption(victim.id, f"preempted for job {job.id} (priority {job.priority})")
            )
    jobs = f"{len(chosen)} preemptible job{'s' if len(chosen) > 1 else ''}"
    return f"waiting for {describe_need(job)}: {jobs} stopping"
