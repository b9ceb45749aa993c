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

from shared.pool.plan_values import (
    NodeView,
    Placement,
    Plan,
    Preemption,
    QueuedJob,
    RunningJob,
    Waiting,
)


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
    free = _FreeDevices(nodes)
    result = Plan()
    victims = _Victims([job for job in running if job.preemptible or job.stopping])
    ahead = 0
    for job in _fair_order(queue, usage, holding):
        group = free.group_for(job)
        reason = _refusal(job, group, holding, quotas)
        if reason is None:
            per_node = job.per_node
            if free.nodes_with(group, per_node) >= job.nodes:
                if job.nodes == 1:
                    chosen = [free.best_fit(group, per_node)]
                else:  # a gang: its distinct nodes, best fit first
                    fitting = [n for n in group.nodes if len(free.of(n.name)) >= per_node]
                    chosen = sorted(
                        fitting, key=lambda n: (n.shunned, len(free.of(n.name)), n.name)
                    )
                parts = []
                for node in chosen[: job.nodes]:
                    devices = free.of(node.name)
                    free.set(node.name, devices[per_node:])
                    parts.append((node.name, tuple(devices[:per_node])))
                holding[job.owner] += job.devices
                result.placements.append(Placement(job.id, tuple(parts)))
                continue
            preempting = _preempt_for(job, group.nodes, free, victims, result)
            reason = preempting or _hold_devices_for(job, group, free, ahead)
        ahead += 1
        result.waiting[job.id] = Waiting(position=ahead, reason=reason)
    return result


@dataclass
class _Group:
    """The nodes jobs of one device kind and label set may run on, and what never changes in
    a pass: how many of them could hold `n` devices at all, and how many of those are up."""

    nodes: list[NodeView]
    sized: dict[int, tuple[int, int]] = field(default_factory=dict)
    # Nodes of the group that are up, by how many free devices each has now.
    by_free: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    # The same nodes by (shunned, free devices), each a heap of names: the best fit is the
    # smallest name of the first such heap that suffices. A name stays in a heap it has left
    # until it reaches the top (`_FreeDevices.best_fit` drops it then).
    heaps: dict[tuple[bool, int], list[str]] = field(default_factory=lambda: defaultdict(list))

    def sized_for(self, per_node: int) -> tuple[int, int]:
        if per_node not in self.sized:
            big = [n for n in self.nodes if n.total >= per_node]
            self.sized[per_node] = (len(big), sum(n.accepting for n in big))
        return self.sized[per_node]


class _FreeDevices:
    """The free devices of the nodes that are up, as the pass gives them out, with a count per
    group of its nodes by free devices: whether a job fits is a look at a few counts, not a
    walk over a thousand nodes (10,000 jobs on 1,000 nodes took 6 s that way)."""

    def __init__(self, nodes: list[NodeView]) -> None:
        self.nodes = nodes
        self.free = {node.name: sorted(node.free) for node in nodes if node.accepting}
        self.by_name = {node.name: node for node in nodes}
        self.groups: dict[tuple[str, frozenset[tuple[str, str]]], _Group] = {}
        self.groups_of: dict[str, list[_Group]] = defaultdict(list)

    def group_for(self, job: QueuedJob) -> _Group:
        """Jobs asking for the same kind and labels see the same nodes: found once per kind."""
        key = (job.device_type, frozenset(job.labels.items()))
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = _Group([n for n in self.nodes if _qualifies(n, job)])
            for node in group.nodes:
                if node.name in self.free:
                    count = len(self.free[node.name])
                    group.by_free[count] += 1
                    group.heaps[node.shunned, count].append(node.name)
                    self.groups_of[node.name].append(group)
            for heap in group.heaps.values():
                heapq.heapify(heap)
        return group

    def of(self, name: str) -> list[int]:
        return self.free.get(name, [])

    def is_up(self, name: str) -> bool:
        return name in self.free

    def set(self, name: str, devices: list[int]) -> None:
        before, after = len(self.free[name]), len(devices)
        self.free[name] = devices
        if before != after:
            shunned = self.by_name[name].shunned
            for group in self.groups_of[name]:
                group.by_free[before] -= 1
                group.by_free[after] += 1
                heapq.heappush(group.heaps[shunned, after], name)

    def best_fit(self, group: _Group, per_node: int) -> NodeView:
        """The node a one-node job of `per_node` devices takes: not shunned before shunned,
        then the fewest free devices that suffice, then the name (the caller knows one fits)."""
        for shunned, count in sorted(k for k in group.heaps if k[1] >= per_node):
            heap = group.heaps[shunned, count]
            while heap and len(self.free[heap[0]]) != count:
                heapq.heappop(heap)  # left this heap since it was pushed
            if heap:
                return self.by_name[heap[0]]
        raise AssertionError("best_fit called with no node that fits")

    def nodes_with(self, group: _Group, per_node: int) -> int:
        """How many of the group's nodes have at least `per_node` free devices now."""
        return sum(count for free, count in group.by_free.items() if free >= per_node)


class _Victims(list[RunningJob]):
    """Running jobs that may be stopped, with their lowest priority kept at hand: most waiting
    jobs outrank none of them, which is then one comparison, not a walk over every one."""

    def __init__(self, jobs: list[RunningJob]) -> None:
        super().__init__(jobs)
        self.lowest = min((v.priority for v in jobs), default=None)

    def remove(self, victim: RunningJob) -> None:
        super().remove(victim)
        self.lowest = min((v.priority for v in self), default=None)


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
    group: _Group,
    holding: Mapping[str, int],
    quotas: Mapping[str, int | None],
) -> str | None:
    """A reason the job cannot start that does not hold anyone else up, or None."""
    quota = quotas.get(job.owner)
    if quota is not None and holding.get(job.owner, 0) + job.devices > quota:
        return f"over your quota of {quota} devices (holding {holding.get(job.owner, 0)})"
    if not group.nodes:
        return f"no node offers {describe_need(job)}"
    big_enough, up = group.sized_for(job.per_node)
    if big_enough < job.nodes:
        return (
            f"no node has {describe_need(job)}"
            if job.nodes == 1
            else (f"fewer than {job.nodes} nodes have {job.per_node} devices each")
        )
    if up < job.nodes:
        return (
            f"every node with {describe_need(job)} is draining or down"
            if job.nodes == 1
            else (f"fewer than {job.nodes} nodes with {job.per_node} devices each are up")
        )
    return None


def _hold_devices_for(job: QueuedJob, group: _Group, free: _FreeDevices, ahead: int) -> str:
    """Keep the free devices of the job's future nodes from the jobs after it; say why it waits."""
    if free.nodes_with(group, 1):  # else nothing is free to hold
        open_nodes = [n for n in group.nodes if free.is_up(n.name) and n.total >= job.per_node]
        ranked = sorted(open_nodes, key=lambda n: (-len(free.of(n.name)), n.name))
        for target in ranked[: job.nodes]:
            free.set(target.name, [])
    jobs_ahead = f"; {ahead} job{'s' if ahead != 1 else ''} ahead" if ahead else ""
    return f"waiting for {describe_need(job)} to free up{jobs_ahead}"


def _preempt_for(
    job: QueuedJob,
    candidates: list[NodeView],
    free: _FreeDevices,
    victims: _Victims,
    result: Plan,
) -> str | None:
    """Make room for `job` by stopping lower-priority preemptible jobs; None if none can.
    (Single-node jobs only: a gang waits for its devices to free up.)"""
    if job.nodes > 1 or victims.lowest is None or victims.lowest >= job.priority:
        return None
    best: tuple[int, str, list[RunningJob]] | None = None
    for node in candidates:
        if not free.is_up(node.name) or node.total < job.devices:
            continue
        missing = job.devices - len(free.of(node.name))
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
    free.set(node_name, [])
    for victim in chosen:
        victims.remove(victim)
        if not victim.stopping:
            result.preemptions.append(
                Preemption(victim.id, f"preempted for job {job.id} (priority {job.priority})")
            )
    jobs = f"{len(chosen)} preemptible job{'s' if len(chosen) > 1 else ''}"
    return f"waiting for {describe_need(job)}: {jobs} stopping"
