"""Admission: a job that no node of the pool could ever run is refused at submission, naming
what it asks for, instead of waiting in the queue for ever.

Each process remembers the live nodes' sizes and labels for LIVE_NODES_S and decides
admissions on that memory, not on a query at every submission (bench/api.py: the query was
a sixth of a submission's time). Only an admission is decided on the memory: a job it would
refuse is checked again against the nodes as they are now, so no job is refused for a node
that registered a moment ago. What the memory can let through is a job that only a node
gone within the last LIVE_NODES_S (dead, or relabelled) could have run; it waits in the
queue, saying why, as every queued job does when the pool shrinks under it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.models import Node
from shared.pool.nodes import NodeState, device_kind
from shared.pool.policy import NodeView, QueuedJob, never_fits

# How old the remembered pool may be when it admits a job: nodes register and die at the
# pace of machines (a heartbeat timeout is tens of seconds), and a second turns a burst of
# submissions' queries into one a second.
LIVE_NODES_S = 1.0

# What admission reads of each live node, built once.
_LIVE_NODES = select(Node.name, Node.devices, Node.labels).where(Node.state != NodeState.DEAD.value)


class LiveNodes:
    """The live nodes as this process last read them, by database, each for `ttl_s` of
    `clock` (tests pass their own clock)."""

    def __init__(
        self, ttl_s: float = LIVE_NODES_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._read: dict[str, tuple[float, list[NodeView]]] = {}
        self._lock = threading.Lock()

    def remembered(self, session: Session) -> list[NodeView] | None:
        """The nodes read within `ttl_s`, or None."""
        entry = self._read.get(_database(session))
        if entry is None or entry[0] <= self.clock():
            return None
        return entry[1]

    def read(self, session: Session) -> list[NodeView]:
        """The live nodes now, remembered for the next `ttl_s`."""
        views = [
            NodeView(
                name=name,
                kind=device_kind(devices),
                total=len(devices),
                free=(),
                labels=labels or {},
            )
            for name, devices, labels in session.execute(_LIVE_NODES)
        ]
        with self._lock:
            self._read[_database(session)] = (self.clock() + self.ttl_s, views)
        return views


# This process's memory (the API's threads share it).
live_nodes = LiveNodes()


def check_admission(session: Session, job: QueuedJob, nodes: LiveNodes = live_nodes) -> str | None:
    """Why the pool could never run the job, or None. With no node registered yet (a pool
    starting up) every job is admitted and waits for one. A refusal is always decided on the
    nodes as they are now (see the module's docstring)."""
    remembered = nodes.remembered(session)
    if remembered is not None and (not remembered or never_fits(job, remembered) is None):
        return None
    views = nodes.read(session)
    return never_fits(job, views) if views else None


def _database(session: Session) -> str:
    """Which database a session speaks to: tests run several, one per test or per service."""
    return str(session.get_bind().url)
