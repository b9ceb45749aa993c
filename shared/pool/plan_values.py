"""What the placement policy (shared/pool/policy.py) reads and answers: queued and running
jobs and nodes as it sees them, and its plan (placements, reasons to wait, preemptions).
Plain frozen values, so the scheduler, admission and `bench/scheduler` build them without a
database."""

from __future__ import annotations

from collections.abc import Mapping
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
